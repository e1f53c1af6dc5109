"""The test OAuth2 authorization server (django-oauth-toolkit), run as a gunicorn subprocess: see settings.py."""

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from tests.servers import ROOT, gunicorn

CLIENT_SECRET = "provider-client-secret-SECRET-777"
USERNAME, PASSWORD = "ada", "ada-password"


@dataclass
class Provider:
    url: str
    client_id: str
    client_secret: str = CLIENT_SECRET

    def catalog_auth(self, **extra) -> dict:
        """The `auth` object of a catalog entry that signs in at this provider."""
        return {"scheme": "oauth2", "authorize_url": f"{self.url}/o/authorize/", "token_url": f"{self.url}/o/token/",
                "client_id": self.client_id, "client_secret": self.client_secret,
                "scopes": ["contacts.read", "offline_access"], **extra}


@contextmanager
def serve(directory, redirect_uris: list[str]):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.oauth_provider.settings",
           "OAUTH_PROVIDER_DB": str(directory / "provider.sqlite3")}
    client_id = subprocess.run([sys.executable, "-m", "tests.oauth_provider.setup", " ".join(redirect_uris), CLIENT_SECRET],
                               cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.strip()
    with gunicorn("django.core.wsgi:get_wsgi_application()", env=env, threads=4) as url:
        yield Provider(url, client_id)
