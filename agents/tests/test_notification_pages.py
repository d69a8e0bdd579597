"""The notifications page over HTTP (UI.md `/notifications`): add a webhook (its signing secret shown
once) or an email channel, edit, enable and disable, delete, send a test; the deliveries of every
channel, paginated; bad input beside its field; admins only, one organization only."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import UserFactory
from agents.models import EventType, NotificationChannel, NotificationDelivery, NotificationEvent
from agents.notifications import secrets, services, webhooks
from agents.tests.factories import NotificationChannelFactory, NotificationDeliveryFactory
from logfleet.testing import browser_client

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# A public address written as a literal: the SSRF guard checks it without any DNS.
PUBLIC_URL = "https://93.184.216.34/hooks/logfleet"


def add(client, *, htmx=False, **fields):
    body = {
        "action": "create",
        "kind": "webhook",
        "name": "ops hook",
        "url": PUBLIC_URL,
        "events": ["agent.offline", "agent.online"],
        "agent_selector": "env:prod\nregion: eu-west\n",
        "enabled": "on",
        **fields,
    }
    body = {key: value for key, value in body.items() if value is not None}
    return client.post("/notifications", body, **(HTMX if htmx else {}))


def shown_secret(response) -> str | None:
    """The secret in the element labelled `Signing secret`, or None."""
    output = r'<output id="new-secret" aria-label="Signing secret">([^<]*)</output>'
    found = re.search(output, response.content.decode())
    return found.group(1) if found else None


def rows(page: str, caption: str) -> list[str]:
    table = re.search(rf"<caption>{caption}</caption>.*?</table>", page, flags=re.S)
    assert table, caption
    return re.findall(r"<tr>.*?</tr>", table.group(0), flags=re.S)[1:]


@pytest.fixture
def admin_browser(admin_user):
    return browser_client(admin_user)


def test_the_empty_page_says_how_to_start(admin_browser):
    r = admin_browser.get("/notifications")
    page = r.content.decode()
    assert r.status_code == 200 and "no-store" in r["Cache-Control"]
    assert "<caption>Notification channels</caption>" in page and "<caption>Deliveries</caption>" in page
    assert "No notification channels yet" in page and "No deliveries yet" in page
    assert 'aria-current="page">Notifications</a>' in page
    # Defaults: a webhook for the agents' events, enabled.
    assert re.search(r'value="webhook" checked', page) and 'name="enabled" checked' in page
    assert 'value="agent.offline" checked' in page and 'value="api_key.expiring">' in page
    assert 'hx-trigger="every 5s"' not in page, "nothing pending: the table does not poll"


def test_adding_a_webhook_shows_its_secret_once_and_keeps_it_encrypted(admin_browser, org):
    r = add(admin_browser)
    page = r.content.decode()
    assert r.status_code == 201, page[-3000:]
    secret = shown_secret(r)
    assert secret and secret.startswith("whsec_") and 'data-copy="new-secret"' in page
    assert "no-store" in r["Cache-Control"]
    channel = NotificationChannel.objects.get(organization=org)
    assert (channel.name, channel.kind, channel.url, channel.events, channel.agent_selector, channel.enabled) == (
        "ops hook",
        "webhook",
        PUBLIC_URL,
        ["agent.offline", "agent.online"],
        {"env": "prod", "region": "eu-west"},
        True,
    )
    assert secret not in channel.secret_encrypted and secrets.decrypt(channel.secret_encrypted) == secret
    assert AuditEvent.objects.filter(action="notification_channel.created", target_id=str(channel.pk)).count() == 1
    [row] = rows(page, "Notification channels")
    assert "ops hook" in row and PUBLIC_URL in row and "env:prod" in row and "region:eu-west" in row
    # Never again: not on reload, not on the channel's page.
    for path in ("/notifications", f"/notifications/{channel.pk}"):
        again = admin_browser.get(path)
        assert again.status_code == 200 and secret not in again.content.decode() and shown_secret(again) is None


def test_htmx_add_answers_the_part_of_the_page_it_swaps(admin_browser):
    r = add(admin_browser, htmx=True)
    page = r.content.decode()
    assert r.status_code == 201 and "<html" not in page and page.lstrip().startswith('<div id="notifications-area">')
    assert shown_secret(r) and "<caption>Notification channels</caption>" in page


def test_adding_an_email_channel_sends_to_its_address_and_has_no_secret(admin_browser, org):
    r = add(admin_browser, kind="email", name="ops mail", email=" ops@example.com ", url="typed, then left")
    page = r.content.decode()
    assert r.status_code == 201, page[-3000:]
    assert shown_secret(r) is None and "Email channel “ops mail” added: it sends to ops@example.com." in page
    channel = NotificationChannel.objects.get(organization=org)
    assert (channel.kind, channel.email, channel.url, channel.secret_encrypted) == ("email", "ops@example.com", "", "")


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"name": ""}, "name", "must be 1 to 128 characters"),
        ({"name": "x" * 129}, "name", "must be 1 to 128 characters"),
        ({"url": "http://127.0.0.1:9/hook"}, "url", webhooks.PRIVATE_MESSAGE),
        ({"url": "http://10.1.2.3/hook"}, "url", webhooks.PRIVATE_MESSAGE),
        ({"url": "ftp://93.184.216.34/x"}, "url", "must be an http:// or https:// URL, without spaces"),
        ({"url": ""}, "url", "is required for a webhook channel"),
        ({"url": PUBLIC_URL + "\x00"}, "url", "Null characters are not allowed"),
        ({"url": "https://93.184.216.34/a b"}, "url", "must be an http:// or https:// URL, without spaces"),
        ({"name": "ops\x00"}, "name", "Null characters are not allowed"),
        ({"kind": "email", "email": "not an address"}, "email", "must be a valid email address"),
        ({"kind": "email", "email": ""}, "email", "is required for an email channel"),
        ({"kind": None}, "kind", ""),
        ({"kind": "sms"}, "kind", ""),
        ({"events": []}, "events", ""),
        ({"events": ["agent.exploded"]}, "events", ""),
        ({"agent_selector": "env prod"}, "agent_selector", "line 1: write each label as key:value"),
        ({"agent_selector": "env:a\nenv:b"}, "agent_selector", "line 2: the key 'env' is there twice"),
        ({"agent_selector": "1bad:x"}, "agent_selector", "must match"),
    ],
)
def test_bad_input_is_shown_beside_its_field_what_was_typed_stays_and_nothing_is_made(
    admin_browser, fields, field, words
):
    r = add(admin_browser, **fields)
    page = r.content.decode()
    assert r.status_code == 400, page[-3000:]
    error = re.search(rf'<p class="error" id="f-{field}-error">([^<]*)</p>', page)
    assert error, page[-4000:]
    assert words in error.group(1).replace("&#x27;", "'")
    assert shown_secret(r) is None and not NotificationChannel.objects.exists()
    if field != "name":
        assert 'value="ops hook"' in page, "what was typed stays"
    if field == "url" and fields["url"]:
        assert f'value="{fields["url"]}"'.replace("\x00", "") in page.replace("\x00", "")
    if field != "agent_selector":
        assert "env:prod\nregion: eu-west\n</textarea>" in page
    if field != "events":
        assert 'value="agent.offline" checked' in page and 'value="agent.error">' in page


def test_a_private_url_is_refused_in_the_servers_words_next_to_url(admin_browser):
    r = add(admin_browser, htmx=True, url="http://localhost:8080/hook")
    page = r.content.decode()
    assert r.status_code == 400 and "<html" not in page
    field = re.search(r'<div class="field invalid">\s*<label for="f-url">URL</label>.*?</div>', page, flags=re.S)
    assert field and f'<p class="error" id="f-url-error">{webhooks.PRIVATE_MESSAGE}</p>' in field.group(0)
    assert 'value="http://localhost:8080/hook"' in field.group(0)


def test_a_name_already_used_is_said_beside_the_name(admin_browser, org):
    NotificationChannelFactory(organization=org, name="ops hook")
    r = add(admin_browser)
    assert r.status_code == 409 and "already used by another notification channel" in r.content.decode()
    assert NotificationChannel.objects.count() == 1


def test_the_organizations_limit_of_channels_is_said_on_the_form(admin_browser, org, settings):
    settings.MAX_NOTIFICATION_CHANNELS_PER_ORG = 1  # the limit, reached with one channel
    NotificationChannelFactory(organization=org)
    r = add(admin_browser)
    assert r.status_code == 409 and 'class="error form-error" role="alert"' in r.content.decode()
    assert NotificationChannel.objects.count() == 1


def test_disable_and_enable_a_channel(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, name="ops")
    r = admin_browser.post("/notifications", {"action": "disable", "channel": str(channel.pk)}, follow=True)
    page = r.content.decode()
    assert "“ops” is disabled" in page and 'class="status disabled">disabled' in rows(page, "Notification channels")[0]
    channel.refresh_from_db()
    assert channel.enabled is False
    assert ">Enable</button>" in page and ">Disable</button>" not in page
    admin_browser.post("/notifications", {"action": "enable", "channel": str(channel.pk)})
    channel.refresh_from_db()
    assert channel.enabled is True
    assert AuditEvent.objects.filter(action="notification_channel.updated", target_id=str(channel.pk)).count() == 2


def test_sending_a_test_lists_a_pending_delivery_and_the_table_watches_it(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, name="ops", enabled=False)  # a test goes anyway
    r = admin_browser.post("/notifications", {"action": "test", "channel": str(channel.pk)})
    assert r.status_code == 302 and r["Location"] == "/notifications"
    delivery = NotificationDelivery.objects.get(channel=channel)
    assert delivery.event.type == EventType.TEST and delivery.status == "pending"
    page = admin_browser.get("/notifications").content.decode()
    assert "A test notification to “ops” is on its way" in page
    [row] = rows(page, "Deliveries")
    assert "<code>test</code>" in row and '<td data-label="Channel">ops</td>' in row and "status pending" in row
    assert 'hx-get="/notifications/deliveries?" hx-trigger="every 5s"' in page
    # The refresh answers the table alone, and stops polling once nothing is pending.
    delivery.status, delivery.attempts, delivery.response_status = "delivered", 1, 204
    delivery.delivered_at = timezone.now()
    delivery.save()
    fragment = admin_browser.get("/notifications/deliveries", **HTMX)
    html = fragment.content.decode()
    assert fragment.status_code == 200 and html.lstrip().startswith('<section id="deliveries"')
    assert "status delivered" in html and "HTTP 204" in html and "hx-trigger" not in html


def test_tests_waiting_to_be_sent_are_bounded(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, name="ops")
    for _ in range(services.MAX_PENDING_TESTS):
        services.notification_channel_test(channel=channel)
    r = admin_browser.post("/notifications", {"action": "test", "channel": str(channel.pk)})
    assert r.status_code == 409 and "No test sent to “ops”" in r.content.decode()
    assert NotificationDelivery.objects.count() == services.MAX_PENDING_TESTS


def test_delete_a_channel_and_its_deliveries(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, name="old")
    NotificationDeliveryFactory(channel=channel)
    r = admin_browser.post("/notifications", {"action": "delete", "channel": str(channel.pk)}, follow=True)
    assert "“old” is deleted, with its deliveries." in r.content.decode()
    assert not NotificationChannel.objects.exists() and not NotificationDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="notification_channel.deleted", target_id=str(channel.pk)).count() == 1


@pytest.mark.parametrize("action", ["test", "enable", "disable", "delete"])
def test_another_organizations_channel_or_no_channel_is_not_found(admin_browser, other_org, action):
    theirs = NotificationChannelFactory(organization=other_org, enabled=action != "enable")
    for channel in (str(theirs.pk), "not-an-id", ""):
        r = admin_browser.post("/notifications", {"action": action, "channel": channel})
        assert r.status_code == 404 and "no such notification channel" in r.content.decode()
    theirs.refresh_from_db()
    assert theirs.enabled is (action != "enable") and not NotificationDelivery.objects.exists()
    assert admin_browser.get(f"/notifications/{theirs.pk}").status_code == 404
    assert admin_browser.post(f"/notifications/{theirs.pk}", {"name": "mine now"}).status_code == 404
    assert NotificationChannel.objects.get(pk=theirs.pk).name == theirs.name


def test_an_unknown_action_is_refused(admin_browser):
    assert admin_browser.post("/notifications", {"action": "explode"}).status_code == 400


def test_deliveries_are_the_organizations_newest_first_paginated_and_by_channel(admin_browser, org, other_org):
    first = NotificationChannelFactory(organization=org, name="first")
    second = NotificationChannelFactory(organization=org, name="second")
    NotificationDeliveryFactory(channel=NotificationChannelFactory(organization=other_org, name="theirs"))
    now = timezone.now()
    for minutes in range(51):
        NotificationDeliveryFactory(
            channel=first, status="delivered", delivered_at=now, created_at=now - timedelta(minutes=minutes)
        )
    newest = NotificationDeliveryFactory(channel=second, status="failed", attempts=9, error="HTTP 500 every time")
    newest.created_at = now + timedelta(minutes=1)
    newest.save()
    page = admin_browser.get("/notifications").content.decode()
    listed = rows(page, "Deliveries")
    assert len(listed) == 50 and "second" in listed[0] and "status failed" in listed[0]
    assert "HTTP 500 every time" in listed[0] and "theirs" not in page
    assert "1\N{EN DASH}50 of 52 deliveries" in page and 'href="?page=2"' in page
    assert 'hx-trigger="every 5s"' not in page
    second_page = admin_browser.get("/notifications?page=2").content.decode()
    assert len(rows(second_page, "Deliveries")) == 2
    only = admin_browser.get(f"/notifications?channel={second.pk}").content.decode()
    assert len(rows(only, "Deliveries")) == 1 and f'<option value="{second.pk}" selected>' in only
    past = admin_browser.get("/notifications?page=9").content.decode()
    assert "No deliveries on this page." in past


@pytest.mark.parametrize("query", ["page=0", "page=two", "channel=nope", "channel={theirs}"])
def test_a_bad_page_or_channel_of_the_deliveries_is_a_400(admin_browser, other_org, query):
    theirs = NotificationChannelFactory(organization=other_org)
    for path in ("/notifications", "/notifications/deliveries"):
        assert admin_browser.get(f"{path}?{query.format(theirs=theirs.pk)}").status_code == 400


def test_edit_a_channel(admin_browser, org, monkeypatch):
    channel = NotificationChannelFactory(
        organization=org, name="ops", events=["agent.offline"], agent_selector={"env": "prod"}
    )
    r = admin_browser.get(f"/notifications/{channel.pk}")
    page = r.content.decode()
    assert r.status_code == 200 and 'value="ops"' in page and f'value="{channel.url}"' in page
    assert "env:prod\n</textarea>" in page and 'value="agent.offline" checked' in page
    assert 'name="kind"' not in page and 'id="f-email"' not in page, "a webhook stays a webhook"

    # The URL is not changed: it is not resolved again (the name would need DNS).
    def no_dns(*args):
        raise AssertionError("resolved an unchanged URL")

    monkeypatch.setattr(webhooks, "resolve", no_dns)
    body = {"name": "ops, renamed", "url": channel.url, "events": ["agent.error", "api_key.expiring"]}
    r = admin_browser.post(f"/notifications/{channel.pk}", {**body, "agent_selector": ""}, follow=True)
    assert "“ops, renamed” is saved." in r.content.decode()
    channel.refresh_from_db()
    assert (channel.name, channel.events, channel.agent_selector, channel.enabled) == (
        "ops, renamed",
        ["agent.error", "api_key.expiring"],
        {},
        False,
    )
    assert AuditEvent.objects.filter(action="notification_channel.updated", target_id=str(channel.pk)).exists()


def test_editing_refuses_bad_input_beside_its_field_and_keeps_the_channel(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, name="ops")
    body = {"name": "renamed", "url": "http://192.168.1.10/hook", "events": ["agent.offline"], "enabled": "on"}
    r = admin_browser.post(f"/notifications/{channel.pk}", body)
    page = r.content.decode()
    assert r.status_code == 400 and f'<p class="error" id="f-url-error">{webhooks.PRIVATE_MESSAGE}</p>' in page
    assert 'value="renamed"' in page and 'value="http://192.168.1.10/hook"' in page
    r = admin_browser.post(f"/notifications/{channel.pk}", {**body, "url": channel.url, "events": []})
    assert r.status_code == 400 and 'id="f-events-error"' in r.content.decode()
    assert NotificationChannel.objects.get(pk=channel.pk).name == "ops"


def test_an_email_channel_is_edited_with_its_address(admin_browser, org):
    channel = NotificationChannelFactory(organization=org, kind="email", url="", email="a@example.com")
    page = admin_browser.get(f"/notifications/{channel.pk}").content.decode()
    assert 'value="a@example.com"' in page and 'id="f-url"' not in page
    r = admin_browser.post(
        f"/notifications/{channel.pk}", {"name": channel.name, "email": "b@", "events": ["agent.offline"]}
    )
    assert r.status_code == 400 and 'id="f-email-error"' in r.content.decode()
    body = {"name": channel.name, "email": "b@example.com", "events": ["agent.offline"], "enabled": "on"}
    assert admin_browser.post(f"/notifications/{channel.pk}", body).status_code == 302
    assert NotificationChannel.objects.get(pk=channel.pk).email == "b@example.com"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_get_the_403_page_and_change_nothing(org, role):
    client = browser_client(UserFactory(organization=org, role=role))
    channel = NotificationChannelFactory(organization=org, name="ops")
    for path in ("/notifications", "/notifications/deliveries", f"/notifications/{channel.pk}"):
        r = client.get(path)
        assert r.status_code == 403 and "This needs the admin role" in r.content.decode()
    posts = [
        ("/notifications", {"action": "create", "kind": "webhook", "name": "x", "url": PUBLIC_URL}),
        ("/notifications", {"action": "test", "channel": str(channel.pk)}),
        ("/notifications", {"action": "disable", "channel": str(channel.pk)}),
        ("/notifications", {"action": "delete", "channel": str(channel.pk)}),
        (f"/notifications/{channel.pk}", {"name": "renamed", "events": ["agent.offline"]}),
    ]
    for path, body in posts:
        assert client.post(path, {**body, "events": ["agent.offline"]}).status_code == 403
    channel.refresh_from_db()
    assert (NotificationChannel.objects.count(), channel.name, channel.enabled) == (1, "ops", True)
    assert not NotificationEvent.objects.exists()
    assert 'href="/notifications"' not in client.get("/agents").content.decode(), "no nav entry"


def test_anonymous_visitors_are_sent_to_sign_in(client):
    r = client.get("/notifications?page=2")
    assert r.status_code == 302 and r["Location"] == "/login?next=%2Fnotifications%3Fpage%3D2"
    r = client.get("/notifications/deliveries", **HTMX)
    assert r.status_code == 401 and r["HX-Redirect"].startswith("/login?next=")


def test_forms_carry_the_csrf_token(admin_user, org):
    from django.test import Client

    from accounts import services as account_services
    from accounts.browser import SESSION_KEY

    NotificationChannelFactory(organization=org)
    client = Client(enforce_csrf_checks=True)
    session = client.session
    session[SESSION_KEY] = str(account_services.session_start(user=admin_user).session_id)
    session.save()
    page = client.get("/notifications").content.decode()
    forms = re.findall(r'<form[^>]* method="post".*?</form>', page, flags=re.S)
    assert len(forms) == 6 and all("csrfmiddlewaretoken" in form for form in forms)
    assert client.post("/notifications", {"action": "create"}).status_code == 403
