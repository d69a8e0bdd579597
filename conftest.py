import pytest
from django.core.cache import cache, caches
from django.test import Client
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Role
from accounts.tests.factories import OperatorFactory, OrganizationFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings):
    # Argon2 is the production hasher (tested on its own); tests hash with MD5 for speed.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    for store in (cache, caches["ratelimit-fallback"]):
        store.clear()
    yield
    for store in (cache, caches["ratelimit-fallback"]):
        store.clear()


@pytest.fixture
def api_client():
    return APIClient()


def client_for(user) -> APIClient:
    """An API client with a fresh session (Bearer token) of `user`."""
    client = APIClient()
    pair = services.session_start(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.token}")
    client.tokens = pair
    client.user = user
    return client


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def admin_user(org):
    return UserFactory(organization=org, role=Role.ADMIN)


@pytest.fixture
def member_user(org):
    return UserFactory(organization=org, role=Role.MEMBER)


@pytest.fixture
def viewer_user(org):
    return UserFactory(organization=org, role=Role.VIEWER)


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


@pytest.fixture
def member_client(member_user):
    return client_for(member_user)


@pytest.fixture
def viewer_client(viewer_user):
    return client_for(viewer_user)


@pytest.fixture
def role_clients(admin_client, member_client, viewer_client):
    return {Role.ADMIN: admin_client, Role.MEMBER: member_client, Role.VIEWER: viewer_client}


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def operator_client(db):
    """The Django admin's browser session of a superuser (an operator, in no organization)."""
    client = Client()
    client.user = OperatorFactory()
    client.force_login(client.user)
    return client


@pytest.fixture
def other_admin_client(other_org):
    return client_for(UserFactory(organization=other_org, role=Role.ADMIN))


@pytest.fixture
def clock(monkeypatch):
    """Move the service's clock: `clock.advance(seconds)`. Patches django.utils.timezone.now."""
    from datetime import timedelta

    from django.utils import timezone

    real_now = timezone.now

    class Clock:
        offset = timedelta(0)

        def advance(self, seconds: float):
            self.offset += timedelta(seconds=seconds)

        def now(self):
            return real_now() + self.offset

    instance = Clock()
    monkeypatch.setattr(timezone, "now", instance.now)
    return instance
