"""Integry's published Python SDK, unmodified (integry 0.0.20), against the running server (spec integry.md).

The SDK needs Python >= 3.12 (PEP 695) and this project runs on 3.11, so it lives in its own virtualenv,
`.venv-sdk312`, created here on first use from a Python >= 3.12: `$INTEGRY_SDK_PYTHON`, else `python3.12` on PATH,
else the oldest 3.12+ under `$PYENV_ROOT/versions`. Without one, these tests are skipped.
Each test runs tests/sdk/integry_driver.py in that Python against pytest-django's `live_server`.
"""

import fcntl
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from connections.models import Connection
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration

ROOT = Path(__file__).resolve().parent.parent
SDK_VENV = ROOT / ".venv-sdk312"
SDK_REQUIREMENT = "integry==0.0.20"
DRIVER = Path(__file__).resolve().parent / "sdk" / "integry_driver.py"
SDK_READY = ("import sys, importlib.metadata as m; import integry; "
             "sys.exit(0 if sys.version_info >= (3, 12) and m.version('integry') == '0.0.20' else 1)")
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
FUNCTION = "httpbin-passthrough-request"
TOKEN = "tok-SECRET-123456"


def _runs(command, timeout=60) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def python_312_candidates() -> list[str]:
    pyenv_versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [os.environ.get("INTEGRY_SDK_PYTHON"), shutil.which("python3.12"),
             *sorted(str(p) for p in pyenv_versions.glob("3.1[2-9]*/bin/python"))]
    return [python for python in found if python]


def python_312() -> str | None:
    """The first candidate that really runs and is >= 3.12 (a pyenv shim may exist without a usable version)."""
    check = "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"
    return next((python for python in python_312_candidates() if _runs([python, "-c", check])), None)


@pytest.fixture(scope="session")
def sdk_python():
    """The Python of `.venv-sdk312` with the SDK installed; created (once, under a lock) when missing."""
    venv_python = str(SDK_VENV / "bin" / "python")
    if _runs([venv_python, "-c", SDK_READY]):
        return venv_python
    base = python_312()
    if base is None:
        pytest.skip("Integry SDK tests need Python >= 3.12 (set INTEGRY_SDK_PYTHON, put python3.12 on PATH, or "
                    f"install one with pyenv); tried: {python_312_candidates() or 'nothing found'}")
    with open(Path(tempfile.gettempdir()) / "integry-sdk-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the SQLite and PostgreSQL legs may run at once
        if not _runs([venv_python, "-c", SDK_READY]):
            for command in ([base, "-m", "venv", "--clear", str(SDK_VENV)],
                            [venv_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             SDK_REQUIREMENT]):
                done = subprocess.run(command, capture_output=True, text=True, timeout=600)
                assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    assert _runs([venv_python, "-c", SDK_READY]), f"{SDK_REQUIREMENT} is not importable in {SDK_VENV}"
    return venv_python


@pytest.fixture
def sdk(sdk_python, live_server):
    """`sdk(tenant, steps)` runs the driver: each step is (op, kwargs); returns one result per step."""

    def run(tenant, steps, app_secret=None):
        spec = {"app_key": tenant.api_key.key_id, "app_secret": app_secret or tenant.key, "steps": steps}
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in PROXY_VARIABLES and k not in ("PYTHONPATH", "PYTHONHOME")}
        done = subprocess.run([sdk_python, str(DRIVER), live_server.url], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


@pytest.fixture
def connected(alice, httpbin_integration):
    """alice's user-1 has one httpbin account."""
    return make_connection(alice.organization, httpbin_integration)[0]


def raised(result, exception, message=None):
    assert isinstance(result, dict) and result.get("raised") == exception, result
    if message is not None:
        assert result["message"] == message
    return result


def assert_no_secret_logged(*secrets):
    for row in FunctionCall.objects.all():
        stored = json.dumps({field.name: str(getattr(row, field.attname)) for field in row._meta.concrete_fields})
        assert not any(secret in stored for secret in secrets)


class TestFunctions:
    def test_list_iterates_every_function_across_pages(self, alice, sdk):
        for i in range(60):
            make_integration(slug=f"app{i:03d}", base_url=f"https://api.app{i:03d}.test")
        names, first = sdk(alice, [("functions.list", {"user_id": "user-1"}),
                                   ("functions.list_page", {"user_id": "user-1"})])
        assert names == sorted(names) and len(set(names)) == 60
        assert len(first["names"]) == 50 and first["cursor"]
        [second] = sdk(alice, [("functions.list_page", {"user_id": "user-1", "cursor": first["cursor"]})])
        assert len(second["names"]) == 10 and second["cursor"] == ""  # the SDK turns our null into ""
        assert first["names"] + second["names"] == names

    def test_list_filters(self, alice, sdk, connected):
        make_integration(slug="acme")
        by_type, by_app, by_connection, with_meta = sdk(alice, [
            ("functions.list", {"user_id": "user-1", "type": "ACTION"}),
            ("functions.list", {"user_id": "user-1", "app": "Httpbin"}),
            ("functions.list", {"user_id": "user-1", "connected_only": True}),
            ("functions.list", {"user_id": "user-1", "include": ["meta"]}),
        ])
        assert by_type == []
        assert by_app == by_connection == [FUNCTION]
        assert with_meta == ["acme-passthrough-request", FUNCTION]

    def test_get_returns_the_schema_with_its_extra_keys(self, alice, sdk, httpbin_integration):
        plain, with_meta = sdk(alice, [("functions.get", {"function_name": FUNCTION, "user_id": "user-1"}),
                                       ("functions.get", {"function_name": FUNCTION, "user_id": "user-1",
                                                          "include": ["meta"], "prompt": "get my data"})])
        assert plain["name"] == FUNCTION
        assert plain["description"] == "Make an authenticated HTTP request to the Httpbin API."
        parameters = plain["schema"]["parameters"]
        assert parameters["required"] == ["method", "url"]
        assert parameters["properties"]["method"]["enum"][0] == "GET"
        assert parameters["properties"]["url"]["description"]
        assert with_meta["schema"]["meta"]["app"]["name"] == "httpbin"

    def test_get_unknown_function_raises_not_found(self, alice, sdk):
        [result] = sdk(alice, [("functions.get", {"function_name": "nope-passthrough-request", "user_id": "user-1"})])
        raised(result, "integry.exceptions.NotFound", "Function not found")

    def test_predict_returns_no_function(self, alice, sdk, httpbin_integration):
        [result] = sdk(alice, [("functions.predict", {"prompt": "list my contacts", "user_id": "user-1",
                                                      "predict_arguments": True, "variables": {"a": 1}})])
        assert result == []


class TestCall:
    def test_call_returns_the_upstream_answer_with_an_integer_network_code(self, alice, sdk, connected):
        arguments = {"method": "GET", "url": "/get", "query": {"limit": "2"}}
        [result] = sdk(alice, [("functions.call", {"function_name": FUNCTION, "arguments": arguments,
                                                   "user_id": "user-1"})])
        assert result["class"] == "FunctionCallOutput"
        assert result["network_code"] == 200
        assert result["output"]["args"] == {"limit": "2"}
        row = FunctionCall.objects.get()
        assert (row.dialect, row.response_status, row.connection) == ("integry", 200, connected)

    def test_call_sync_over_the_double_slash_path(self, alice, sdk, connected):
        arguments = {"method": "POST", "url": "/anything", "body": {"name": "Ada"}, "headers": None}
        [result] = sdk(alice, [("functions.call_sync", {"function_name": FUNCTION, "arguments": arguments,
                                                        "user_id": "user-1", "variables": {"x": 1}})])
        assert result["network_code"] == 200 and result["output"]["json"] == {"name": "Ada"}

    def test_upstream_error_is_an_output_not_an_exception(self, alice, sdk, connected):
        [result] = sdk(alice, [("functions.call", {"function_name": FUNCTION, "user_id": "user-1",
                                                   "arguments": {"method": "GET", "url": "/status/418"}})])
        assert result["class"] == "FunctionCallOutput" and result["network_code"] == 418

    def test_each_executed_call_is_logged_once_without_secrets(self, alice, sdk, connected):
        call = {"function_name": FUNCTION, "user_id": "user-1", "arguments": {"method": "GET", "url": "/anything"}}
        results = sdk(alice, [("functions.call", call), ("functions.call_sync", call)])
        assert [r["network_code"] for r in results] == [200, 200]
        assert results[0]["output"]["headers"]["Authorization"] == f"Bearer {TOKEN}"  # the caller's output is intact
        assert FunctionCall.objects.filter(dialect="integry").count() == 2
        user_hash = hmac.new(alice.key.encode(), b"user-1", hashlib.sha256).hexdigest()
        assert_no_secret_logged(TOKEN, alice.key, user_hash)

    def test_invalid_arguments_raise_function_call_error(self, alice, sdk, connected):
        [result] = sdk(alice, [("functions.call", {"function_name": FUNCTION, "user_id": "user-1",
                                                   "arguments": {"method": "GET"}})])
        assert raised(result, "integry.exceptions.FunctionCallError")["errors"] == ["url: This parameter is required."]
        assert not FunctionCall.objects.exists()

    def test_user_not_connected_raises_function_call_error(self, alice, sdk, connected):
        [result] = sdk(alice, [("functions.call", {"function_name": FUNCTION, "user_id": "user-9",
                                                   "arguments": {"method": "GET", "url": "/get"}})])
        errors = raised(result, "integry.exceptions.FunctionCallError")["errors"]
        assert errors == ["User has not connected their Httpbin account."]
        assert not FunctionCall.objects.exists()

    def test_connected_account_id_picks_one_of_several_accounts(self, alice, sdk, connected, httpbin_integration):
        second, _ = make_connection(alice.organization, httpbin_integration)
        call = {"function_name": FUNCTION, "user_id": "user-1", "arguments": {"method": "GET", "url": "/get"}}
        ambiguous, chosen = sdk(alice, [("functions.call", call),
                                        ("functions.call", {**call, "connected_account_id": second.pk})])
        assert "connected_account_id" in raised(ambiguous, "integry.exceptions.FunctionCallError")["errors"][0]
        assert chosen["network_code"] == 200
        assert FunctionCall.objects.get().connection == second

    def test_wrong_app_secret_is_refused(self, alice, sdk, connected):
        [result] = sdk(alice, [("functions.call", {"function_name": FUNCTION, "user_id": "user-1",
                                                   "arguments": {"method": "GET", "url": "/get"}})],
                       app_secret="not-the-secret")
        assert "Invalid App-Key, User-ID or Hash." in raised(result, "builtins.Exception")["message"]
        assert not FunctionCall.objects.exists()


class TestApps:
    def test_list_iterates_every_app(self, alice, sdk, connected):
        make_integration(slug="acme")
        names, page = sdk(alice, [("apps.list", {"user_id": "user-1"}), ("apps.list_page", {"user_id": "user-1"})])
        assert names == ["acme", "httpbin"]
        assert page == {"names": ["acme", "httpbin"], "cursor": ""}

    def test_get_returns_the_app_with_the_users_accounts(self, alice, sdk, connected, httpbin_integration):
        Connection.objects.filter(pk=connected.pk).update(label="Work")
        [app] = sdk(alice, [("apps.get", {"app_name": "httpbin", "user_id": "user-1"})])
        assert app["id"] == httpbin_integration.id and app["name"] == "httpbin" and app["title"] == "Httpbin"
        assert app["allow_multiple_connected_accounts"] is True
        [account] = app["connected_accounts"]
        assert account["id"] == connected.pk and account["display_name"] == "Work"
        assert account["modified_at"].endswith("Z")

    def test_is_connected(self, alice, sdk, connected):
        assert sdk(alice, [("apps.is_connected", {"app_name": "httpbin", "user_id": "user-1"}),
                           ("apps.is_connected", {"app_name": "httpbin", "user_id": "user-9"})]) == [True, False]

    def test_get_unknown_app_raises_not_found(self, alice, sdk):
        [result] = sdk(alice, [("apps.get", {"app_name": "nope", "user_id": "user-1"})])
        raised(result, "integry.exceptions.NotFound", "App not found")


ZOO = Path(__file__).resolve().parent / "fixtures" / "openapi" / "zoo-3.1.json"


@pytest.fixture
def zoo_connected(alice, httpbin_url):
    """Typed functions from the zoo document on httpbin's /anything (which echoes what it got); alice's user-1 connected."""
    from django.core.management import call_command

    zoo = make_integration(slug="zoo", base_url=f"{httpbin_url}/anything")
    call_command("import_openapi", "--integration", "zoo", str(ZOO), stdout=open(os.devnull, "w"))
    return make_connection(alice.organization, zoo)[0]


class TestTypedFunctions:
    def test_list_by_type_and_every_schema_is_accepted_by_the_sdk(self, alice, sdk, zoo_connected):
        queries, actions, everything = sdk(alice, [
            ("functions.list", {"user_id": "user-1", "type": "QUERY"}),
            ("functions.list", {"user_id": "user-1", "type": "ACTION"}),
            ("functions.list", {"user_id": "user-1", "app": "zoo"}),
        ])
        assert queries == ["zoo-get-animals-animalid", "zoo-list-animals", "zoo-list-keepers"]
        assert actions == ["zoo-create-animal", "zoo-list-keepers-2", "zoo-replace-animal", "zoo-tag-animal"]
        assert sorted(everything) == sorted(queries + actions + ["zoo-passthrough-request"])

    def test_get_serves_integry_types(self, alice, sdk, zoo_connected):
        # The driver also builds the SDK's pydantic model from the schema, as an agent framework would.
        [created] = sdk(alice, [("functions.get", {"function_name": "zoo-create-animal", "user_id": "user-1"})])
        properties = created["schema"]["parameters"]["properties"]
        assert properties["nickname"]["type"] == "string"  # ["string", "null"]
        assert properties["weight"] == {"type": "number", "exclusiveMinimum": 0}
        assert properties["parent"] == {"type": "object"}

    def test_call_builds_the_request_and_logs_it(self, alice, sdk, zoo_connected):
        [result] = sdk(alice, [("functions.call", {"function_name": "zoo-list-animals", "user_id": "user-1",
                                                   "arguments": {"limit": 2, "species": ["cat", "dog"],
                                                                 "vaccinated": False, "X-Trace": None}})])
        assert result["network_code"] == 200
        assert result["output"]["args"] == {"limit": "2", "species": ["cat", "dog"], "vaccinated": "false"}
        assert result["output"]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        row = FunctionCall.objects.get()
        assert (row.dialect, row.function.name) == ("integry", "zoo-list-animals")

    def test_call_sync_with_a_flattened_body(self, alice, sdk, zoo_connected):
        [result] = sdk(alice, [("functions.call_sync", {"function_name": "zoo-create-animal", "user_id": "user-1",
                                                        "arguments": {"name": "Rex", "weight": 3}})])
        assert result["network_code"] == 200 and result["output"]["json"] == {"name": "Rex", "weight": 3}

    def test_invalid_arguments_raise_function_call_error_listing_each(self, alice, sdk, zoo_connected):
        [result] = sdk(alice, [("functions.call", {"function_name": "zoo-list-animals", "user_id": "user-1",
                                                   "arguments": {"limit": "many", "colour": "red"}})])
        errors = raised(result, "integry.exceptions.FunctionCallError")["errors"]
        assert sorted(errors) == ["colour: Unknown argument.", "limit: 'many' is not of type 'integer'"]
        assert not FunctionCall.objects.exists()

    def test_predict_ranks_functions_by_the_prompt(self, alice, sdk, zoo_connected):
        best, nothing = sdk(alice, [
            ("functions.predict", {"prompt": "create a new animal called Rex", "user_id": "user-1"}),
            ("functions.predict", {"prompt": "send an invoice", "user_id": "user-1"}),
        ])
        assert best[0] == "zoo-create-animal" and len(best) <= 5
        assert nothing == []
