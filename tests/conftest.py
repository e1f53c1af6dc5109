import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import make_api_key, make_connection, make_integration


@pytest.fixture(autouse=True)
def _clear_cache(db):
    cache.clear()
    yield
    cache.clear()


class Tenant:
    """An organization with an API key and an authenticated API client."""

    def __init__(self, name):
        self.api_key, self.key = make_api_key(name)
        self.organization = self.api_key.organization
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")


@pytest.fixture
def alice(db):
    return Tenant("alice")


@pytest.fixture
def bob(db):
    return Tenant("bob")


@pytest.fixture
def integration(db):
    return make_integration()


@pytest.fixture
def alice_connection(alice, integration):
    """Returns (connection, account token)."""
    return make_connection(alice.organization, integration)
