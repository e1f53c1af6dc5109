"""Admin login throttling (django-axes) and production security settings (`manage.py check --deploy`)."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model

from tests.servers import ROOT

PASSWORD = "correct horse battery staple"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("operator", "op@example.test", password=PASSWORD)


def log_in(client, password, ip="127.0.0.10"):
    return client.post("/admin/login/?next=/admin/", {"username": "operator", "password": password},
                       REMOTE_ADDR=ip)


def test_ten_failed_logins_lock_that_username_from_that_address(client, operator):
    for _ in range(9):
        assert log_in(client, "wrong").status_code == 200  # the form again, with its error
    assert log_in(client, "wrong").status_code == 429  # the tenth locks
    locked = log_in(client, PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lock_is_per_address(client, operator):
    for _ in range(10):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD, ip="127.0.0.11").status_code == 302


def test_fewer_failures_do_not_lock(client, operator):
    for _ in range(9):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 302


def test_the_failure_limit_is_configurable(client, operator, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429


def check_deploy(**extra):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PLATFORM_ENV": "production",
           "SECRET_KEY": "k" * 20 + "-production-secret-key-with-enough-characters-0123456789",
           "PLATFORM_ENCRYPTION_KEYS": Fernet.generate_key().decode(), **extra}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_production_defaults_pass_check_deploy_without_warnings():
    result = check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_redirect_can_be_turned_off_behind_a_tls_terminating_proxy():
    result = check_deploy(SECURE_SSL_REDIRECT="false", SECURE_PROXY_SSL_HEADER_ENABLED="true")
    assert result.returncode == 0, result.stdout + result.stderr
