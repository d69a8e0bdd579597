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


# --- browser tests: Playwright driving Debian's Chromium against a live Daphne -----------------


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API keeps an event loop running in this
    thread while it lives, which Django takes for async code: its ORM calls in the test itself
    (factories, assertions on rows) are allowed for the module's duration only, so that no other
    test loses the check."""
    import os

    from logfleet.testing import CHROMIUM, browser_required

    if not CHROMIUM.exists():
        message = f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
        if browser_required():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    """One Daphne process per test module serving the tests' database, as `make run` serves it."""
    from bench.live import LiveServer

    # The browser suite signs people in from one address dozens of times a minute; the sign-in
    # limit itself is asserted at the default rates by accounts/tests/test_pages.py.
    server = LiveServer({"LOGFLEET_RATE_AUTH": "1000/m", "LOGFLEET_RATE_AUTH_ACCOUNT": "1000/m"})
    yield server
    server.stop()


@pytest.fixture
def page_as(browser, site, transactional_db):
    """page_as(user) → a Playwright page signed in as `user` (None: anonymous), 1440x900 unless
    `viewport` says otherwise; every page of the test is closed at its end."""
    from logfleet.testing import browser_session_cookie

    contexts = []

    def open_page(user=None, *, viewport=(1440, 900)):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, base_url=site.url)
        context.set_default_timeout(10_000)
        if user is not None:
            context.add_cookies([browser_session_cookie(user, site.url)])
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        # What the page's own code and the CSP complain about; a form answered 400 with its errors is
        # logged by Chromium as a failed resource, which is what such an answer is meant to be.
        page.on(
            "console",
            lambda message: message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and page.console_errors.append(message.text),
        )
        return page

    yield open_page
    for context in contexts:
        context.close()
