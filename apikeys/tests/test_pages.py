"""The API keys page over HTTP (UI.md `/keys`): create (the raw key shown once), rotate with a
grace period, revoke, bad input beside its field, pagination, and admins only."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Role
from accounts.tests.factories import UserFactory
from apikeys import keys, services
from apikeys.models import APIKey
from apikeys.tests.factories import make_key
from logfleet.testing import browser_client

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def create(client, *, htmx=False, **fields):
    body = {"action": "create", "name": "edge fleet", "permissions": ["edge:register", "edge:heartbeat"], **fields}
    return client.post("/keys", body, **(HTMX if htmx else {}))


def shown_key(response) -> str | None:
    """The raw key in the element labelled `New API key`, or None."""
    found = re.search(r'<output id="new-key" aria-label="New API key">([^<]*)</output>', response.content.decode())
    return found.group(1) if found else None


def row_of(page: str, name: str) -> str:
    rows = [row for row in re.findall(r"<tr>.*?</tr>", page, flags=re.S) if f"<td>{name}</td>" in row]
    assert len(rows) == 1, (name, rows)
    return rows[0]


@pytest.fixture
def admin_browser(admin_user):
    return browser_client(admin_user)


def test_create_shows_the_raw_key_once_and_stores_only_its_hash(admin_browser, org):
    r = create(admin_browser)
    assert r.status_code == 201, r.content.decode()[-2000:]
    raw = shown_key(r)
    assert raw and keys.parse_prefix(raw), r.content.decode()
    assert 'data-copy="new-key"' in r.content.decode()
    assert "no-store" in r["Cache-Control"]
    key = APIKey.objects.get(organization=org)
    assert key.key_hash == keys.hash_key(raw) and raw not in (key.key_hash, key.key_prefix)
    assert (key.name, key.permissions, key.expires_at) == ("edge fleet", ["edge:heartbeat", "edge:register"], None)
    assert services.authenticate(raw).id == str(key.pk)
    assert AuditEvent.objects.filter(action="api_key.created", target_id=str(key.pk)).count() == 1
    # Never again: not on reload, not in the list (which shows the prefix).
    again = admin_browser.get("/keys")
    page = again.content.decode()
    assert again.status_code == 200 and raw not in page and shown_key(again) is None
    assert f"{key.key_prefix}…" in row_of(page, "edge fleet") and 'class="status active"' in page


def test_htmx_create_answers_the_part_of_the_page_it_swaps(admin_browser):
    r = create(admin_browser, htmx=True)
    page = r.content.decode()
    assert r.status_code == 201 and "<html" not in page and page.lstrip().startswith('<div id="keys-area">')
    assert shown_key(r) and "<caption>API keys</caption>" in page and "<td>edge fleet</td>" in page


def test_the_expiry_is_taken_as_utc(admin_browser, org):
    assert create(admin_browser, expires_at="2031-05-06T07:08").status_code == 201
    assert APIKey.objects.get(organization=org).expires_at == datetime(2031, 5, 6, 7, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"expires_at": "2001-01-01T00:00"}, "expires_at"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"permissions": []}, "permissions"),
        ({"permissions": ["edge:everything"]}, "permissions"),
    ],
)
def test_bad_input_is_shown_beside_its_field_and_nothing_is_made(admin_browser, fields, field):
    r = create(admin_browser, **fields)
    page = r.content.decode()
    assert r.status_code == 400, page[-2000:]
    assert f'id="f-{field}-error"' in page, page[-3000:]
    assert shown_key(r) is None and not APIKey.objects.exists()
    if field != "name":
        assert 'value="edge fleet"' in page, "what was typed stays"
    if field == "expires_at":
        assert f'value="{fields["expires_at"]}"' in page


def test_htmx_bad_input_comes_back_in_the_part_htmx_swaps(admin_browser):
    r = create(admin_browser, htmx=True, name="")
    page = r.content.decode()
    assert r.status_code == 400 and "<html" not in page and 'id="f-name-error"' in page


def test_the_organizations_limit_of_keys_is_said_on_the_form(admin_browser, org, settings):
    settings.MAX_API_KEYS_PER_ORG = 1
    make_key(org)
    r = create(admin_browser)
    assert r.status_code == 409 and "at most 1 active API keys" in r.content.decode()
    assert APIKey.objects.count() == 1


def test_rotation_shows_the_new_key_once_and_the_old_one_works_through_its_grace(admin_browser, org):
    old, old_raw = make_key(org, name="store-fleet")
    before = timezone.now()
    r = admin_browser.post("/keys", {"action": "rotate", "key": str(old.pk), "grace_seconds": "3600"})
    assert r.status_code == 201, r.content.decode()[-2000:]
    new_raw = shown_key(r)
    new = APIKey.objects.get(replaces=old)
    assert new_raw and new.key_hash == keys.hash_key(new_raw) and new.name == "store-fleet"
    old.refresh_from_db()
    assert before + timedelta(seconds=3590) < old.expires_at <= timezone.now() + timedelta(seconds=3600)
    page = r.content.decode()
    assert f"The old key <code>{old.key_prefix}…</code> keeps working until" in page
    assert old.expires_at.strftime("%Y-%m-%d %H:%M") + " UTC" in page
    assert services.authenticate(old_raw) is not None and services.authenticate(new_raw) is not None
    listed = admin_browser.get("/keys").content.decode()
    assert new_raw not in listed and old_raw not in listed
    rows = [row for row in re.findall(r"<tr>.*?</tr>", listed, flags=re.S) if "<td>store-fleet</td>" in row]
    statuses = [re.search(r'class="status (\w+)"', row).group(1) for row in rows]
    assert statuses == ["active", "rotating"], "newest first: the new key, then the old one in its grace"
    assert "end of grace" in rows[1] and ">Rotate<" not in rows[1] and ">Revoke<" in rows[1]


def test_rotation_with_no_grace_stops_the_old_key_at_once(admin_browser, org):
    old, old_raw = make_key(org)
    r = admin_browser.post("/keys", {"action": "rotate", "key": str(old.pk), "grace_seconds": "0"}, **HTMX)
    assert r.status_code == 201 and shown_key(r)
    assert services.authenticate(old_raw) is None


@pytest.mark.parametrize("grace", ["-1", "604801", "soon"])
def test_a_bad_grace_period_is_refused_and_nothing_rotates(admin_browser, org, grace):
    old, _ = make_key(org, name="kept")
    r = admin_browser.post("/keys", {"action": "rotate", "key": str(old.pk), "grace_seconds": grace})
    assert r.status_code == 400 and "“kept” was not rotated" in r.content.decode()
    assert APIKey.objects.count() == 1 and shown_key(r) is None


def test_a_revoked_key_cannot_be_rotated(admin_browser, org):
    old, _ = make_key(org, name="gone")
    services.api_key_revoke(key=old, actor=services.Actor())
    r = admin_browser.post("/keys", {"action": "rotate", "key": str(old.pk)}, **HTMX)
    page = r.content.decode()
    assert r.status_code == 409 and "Only an active key can be rotated" in page and 'role="alert"' in page
    assert APIKey.objects.count() == 1


def test_revoke_stops_the_key_and_the_list_says_so(admin_browser, org):
    key, raw = make_key(org, name="retired")
    page = admin_browser.get("/keys").content.decode()
    assert 'data-confirm="Revoke “retired”?' in row_of(page, "retired")
    r = admin_browser.post("/keys?page=1", {"action": "revoke", "key": str(key.pk)})
    assert (r.status_code, r["Location"]) == (302, "/keys?page=1")
    assert services.authenticate(raw) is None
    page = admin_browser.get(r["Location"]).content.decode()
    assert "“retired” (" in page and "is revoked" in page
    row = row_of(page, "retired")
    assert 'class="status revoked"' in row and ">Revoke<" not in row and ">Rotate<" not in row
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(key.pk)).count() == 1


def test_an_expired_key_is_shown_expired_without_actions(admin_browser, org, clock):
    make_key(org, name="short-lived", expires_at=timezone.now() + timedelta(hours=1))
    clock.advance(7200)
    row = row_of(admin_browser.get("/keys").content.decode(), "short-lived")
    assert 'class="status expired"' in row and "<form" not in row


def test_another_organizations_key_is_not_found(admin_browser, other_org):
    foreign, raw = make_key(other_org)
    for action in ("rotate", "revoke"):
        r = admin_browser.post("/keys", {"action": action, "key": str(foreign.pk)}, HTTP_ACCEPT="text/html")
        assert r.status_code == 404 and "text/html" in r["Content-Type"]
    assert admin_browser.post("/keys", {"action": "revoke", "key": "not-an-id"}).status_code == 404
    assert services.authenticate(raw) is not None and APIKey.objects.count() == 1


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_get_the_403_page_and_change_nothing(org, role):
    key, raw = make_key(org, name="precious")
    client = browser_client(UserFactory(organization=org, role=role))
    r = client.get("/keys")
    assert r.status_code == 403 and "text/html" in r["Content-Type"] and "precious" not in r.content.decode()
    assert 'href="/keys"' not in client.get("/account").content.decode(), "the nav does not offer it"
    for body in (
        {"action": "create", "name": "sneaky", "permissions": ["edge:register"]},
        {"action": "rotate", "key": str(key.pk), "grace_seconds": "0"},
        {"action": "revoke", "key": str(key.pk)},
    ):
        for headers in ({}, HTMX):
            r = client.post("/keys", body, **headers)
            assert r.status_code == 403 and shown_key(r) is None, body
    assert list(APIKey.objects.values_list("name", flat=True)) == ["precious"]
    key.refresh_from_db()
    assert key.revoked_at is None and key.expires_at is None and services.authenticate(raw) is not None


def test_an_anonymous_visitor_is_sent_to_sign_in(db):
    from django.test import Client

    r = Client().get("/keys")
    assert (r.status_code, r["Location"]) == (302, "/login?next=%2Fkeys")
    r = Client().post("/keys", {"action": "create", "name": "x", "permissions": ["edge:register"]})
    assert r.status_code == 302 and not APIKey.objects.exists()


def test_the_list_is_paginated_newest_first_in_a_bounded_number_of_queries(
    admin_browser, org, django_assert_max_num_queries
):
    made = [make_key(org, name=f"key-{n:02}")[0] for n in range(60)]
    services.api_key_rotate(key=made[0], grace_seconds=60, actor=services.Actor())  # a rotating one among them
    with django_assert_max_num_queries(6):
        first = admin_browser.get("/keys").content.decode()
    names = re.findall(r"<td>(key-\d\d)</td>", first)
    assert len(names) == 50 and names[:2] == ["key-00", "key-59"], names[:3]
    assert "1\N{EN DASH}50 of 61 keys" in first and 'href="?page=2"' in first
    second = admin_browser.get("/keys?page=2").content.decode()
    assert len(re.findall(r"<td>(key-\d\d)</td>", second)) == 11 and "51\N{EN DASH}61 of 61 keys" in second
    assert "Nothing on this page" in admin_browser.get("/keys?page=9").content.decode()
    assert admin_browser.get("/keys?page=x").status_code == 400
