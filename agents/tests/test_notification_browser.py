"""The notifications page in a real browser (Chromium via Playwright, against a live Daphne): an
admin adds a webhook and sees its secret once, sends a test and watches it being delivered, adds an
email channel, disables it, deletes the webhook."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import Role
from accounts.tests.factories import OrganizationFactory, UserFactory
from agents.models import NotificationChannel
from bench.live import LiveServer
from bench.receiver import Receiver

pytestmark = [pytest.mark.live, pytest.mark.browser]

SECRET = re.compile(r"^whsec_[A-Za-z0-9_-]{43}$")


@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    # The webhook receiver of these tests listens on 127.0.0.1, which the SSRF guard refuses by
    # default: the server that checks the URL when the channel is added must allow private addresses.
    server = LiveServer(
        {"LOGFLEET_RATE_AUTH": "1000/m", "LOGFLEET_RATE_AUTH_ACCOUNT": "1000/m", "WEBHOOK_ALLOW_PRIVATE": "true"}
    )
    yield server
    server.stop()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def admin():
    return UserFactory(organization=OrganizationFactory(), role=Role.ADMIN, name="Ada Admin")


def channel_row(page, name: str):
    return page.get_by_role("table", name="Notification channels").get_by_role("row").filter(has_text=name)


def test_add_a_webhook_see_its_secret_once_test_it_add_an_email_disable_and_delete(page_as, receiver, settings):
    # The sender runs in this process and delivers to the receiver on 127.0.0.1 (see `site`).
    settings.WEBHOOK_ALLOW_PRIVATE = True
    person = admin()
    page = page_as(person)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/notifications")
    expect(page.get_by_role("table", name="Notification channels")).to_contain_text("No notification channels yet")
    expect(page.get_by_role("table", name="Deliveries")).to_contain_text("No deliveries yet")

    # A webhook: a bad selector first (a 400 swapped in by htmx beside the field, what was typed kept).
    page.get_by_label("Name").fill("ops hook")
    page.get_by_label("URL", exact=True).fill(f"{receiver.url}/logfleet")
    page.get_by_label("Agent selector").fill("env prod")
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator("#f-agent_selector-error")).to_have_text("line 1: write each label as key:value")
    expect(page.get_by_label("URL", exact=True)).to_have_value(f"{receiver.url}/logfleet")
    page.get_by_label("Agent selector").fill("env:prod")
    page.get_by_label("agent.error").uncheck()
    page.get_by_role("button", name="Add channel").click()
    shown = page.get_by_label("Signing secret", exact=True)
    expect(shown).to_have_text(SECRET)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    secret = shown.text_content()
    row = channel_row(page, "ops hook")
    expect(row).to_contain_text("env:prod")
    expect(row).to_contain_text("enabled")
    expect(row).not_to_contain_text("agent.error")

    # A test: listed at once as pending, then delivered by the sender while the table refreshes itself.
    row.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("A test notification to “ops hook” is on its way")
    expect(page.get_by_label("Signing secret", exact=True)).to_have_count(0)  # never shown again
    deliveries = page.get_by_role("table", name="Deliveries").get_by_role("row")
    expect(deliveries.nth(1)).to_contain_text("pending")
    call_command("sendalerts", "--once", verbosity=0)
    expect(deliveries.nth(1)).to_contain_text("delivered", timeout=15_000)
    expect(deliveries.nth(1)).to_contain_text("HTTP 204")
    [received] = receiver.requests
    assert received.path == "/logfleet" and received.json()["type"] == "test"
    assert received.signed_with(secret)
    page.reload()  # the channel's last delivery
    expect(channel_row(page, "ops hook")).to_contain_text("delivered")

    # An email channel: the Email field replaces URL when the kind is Email.
    page.get_by_role("radio", name="Email").check()
    expect(page.get_by_label("URL", exact=True)).to_be_hidden()
    page.get_by_label("Name").fill("ops mail")
    page.get_by_role("textbox", name="Email", exact=True).fill("ops@example.com")
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_role("status")).to_contain_text("Email channel “ops mail” added")
    expect(page.get_by_label("Signing secret", exact=True)).to_have_count(0)
    channel_row(page, "ops mail").get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text("“ops mail” is disabled")
    expect(channel_row(page, "ops mail")).to_contain_text("disabled")
    expect(channel_row(page, "ops mail").get_by_role("button", name="Enable")).to_be_visible()

    channel_row(page, "ops hook").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("“ops hook” is deleted")
    expect(channel_row(page, "ops hook")).to_have_count(0)
    expect(page.get_by_role("table", name="Deliveries")).to_contain_text("No deliveries yet")
    assert list(NotificationChannel.objects.values_list("name", "enabled")) == [("ops mail", False)]
    assert secret not in page.content()
    assert page.console_errors == []
