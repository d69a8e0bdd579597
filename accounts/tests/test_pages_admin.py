"""The admins' accounts pages over HTTP (UI.md `/members`, `/audit`): invite, change a role,
deactivate, remove, the last admin kept; the audit log with its filters; admins only."""

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

from accounts import services
from accounts.models import AUDIT_ACTIONS, AuditEvent, AuthSession, Role, User, UserStatus
from accounts.tests.factories import UserFactory
from logfleet import mailer
from logfleet.testing import browser_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser(admin_user):
    return browser_client(admin_user)


def row_of(page: str, text: str) -> str:
    rows = [row for row in re.findall(r"<tr[ >].*?</tr>", page, flags=re.S) if text in row]
    assert len(rows) == 1, (text, rows)
    return rows[0]


def change(client, member, action, **fields):
    return client.post("/members", {"action": action, "member": str(member.pk), **fields})


# --- members -------------------------------------------------------------------------------------


def test_the_members_table_lists_everyone_oldest_first(admin_browser, admin_user, member_user, org):
    invited = UserFactory(organization=org, role=Role.VIEWER, status=UserStatus.INVITED, name="Nova")
    UserFactory(name="Elsewhere")  # another organization's
    page = admin_browser.get("/members").content.decode()
    assert "<caption>Members</caption>" in page and "Elsewhere" not in page
    assert page.index(admin_user.email) < page.index(member_user.email) < page.index(invited.email)
    row = row_of(page, invited.email)
    assert 'class="status invited"' in row and '<option value="viewer" selected>' in row
    assert "(you)" in row_of(page, admin_user.email) and ">Deactivate<" in row_of(page, member_user.email)


def test_an_invitation_sends_the_email_and_lists_the_person_as_invited(admin_browser, admin_user, org):
    r = admin_browser.post(
        "/members", {"action": "invite", "email": "New@Example.com", "name": "Newt", "role": "viewer"}
    )
    assert (r.status_code, r["Location"]) == (302, "/members")
    invited = User.objects.get(email="new@example.com")
    assert (invited.organization, invited.role, invited.status) == (org, Role.VIEWER, UserStatus.INVITED)
    mailer.drain()
    (message,) = mail.outbox
    assert message.to == ["new@example.com"] and "/reset-password?token=" in message.body
    page = admin_browser.get("/members").content.decode()
    assert "new@example.com is invited as viewer" in page and 'class="status invited"' in row_of(page, "new@example")
    assert AuditEvent.objects.filter(action="member.invited", actor_id=admin_user.pk).count() == 1


def test_a_bad_invitation_is_shown_beside_its_field(admin_browser, member_user):
    r = admin_browser.post("/members", {"action": "invite", "email": "not-an-email", "name": "Ann", "role": "member"})
    page = r.content.decode()
    assert r.status_code == 400 and 'id="f-email-error"' in page and 'value="Ann"' in page
    r = admin_browser.post("/members", {"action": "invite", "email": "a@example.com", "name": "Ann", "role": "boss"})
    assert r.status_code == 400 and 'id="f-role-error"' in r.content.decode()
    r = admin_browser.post(
        "/members", {"action": "invite", "email": member_user.email, "name": "Ann", "role": "member"}
    )
    page = r.content.decode()
    assert r.status_code == 409 and 'id="f-email-error"' in page and "already registered" in page
    assert User.objects.count() == 2 and not mail.outbox


def test_an_admin_changes_a_role(admin_browser, member_user):
    r = change(admin_browser, member_user, "role", role="viewer")
    assert r.status_code == 302
    member_user.refresh_from_db()
    assert member_user.role == Role.VIEWER
    assert f"{member_user.name} is now viewer." in admin_browser.get(r["Location"]).content.decode()
    assert AuditEvent.objects.filter(action="member.updated", target_id=str(member_user.pk)).count() == 1


def test_the_last_admin_cannot_be_demoted_deactivated_or_removed(admin_browser, admin_user):
    for action, fields in (("role", {"role": "member"}), ("deactivate", {}), ("remove", {})):
        r = change(admin_browser, admin_user, action, **fields)
        page = r.content.decode()
        assert r.status_code == 409, (action, page[-2000:])
        assert 'role="alert">The organization needs at least one active admin' in page
        assert "The organization needs at least one active admin" in row_of(page, admin_user.email)
    admin_user.refresh_from_db()
    assert (admin_user.role, admin_user.status) == (Role.ADMIN, UserStatus.ACTIVE)
    assert not AuditEvent.objects.filter(action__startswith="member.").exists()


def test_deactivating_signs_the_member_out_and_activating_lets_them_back(admin_browser, member_user):
    browser = browser_client(member_user)
    assert browser.get("/account").status_code == 200
    assert change(admin_browser, member_user, "deactivate").status_code == 302
    assert browser.get("/account").status_code == 302, "signed out at the next click"
    assert not AuthSession.objects.filter(user=member_user, ended_at__isnull=True).exists()
    page = admin_browser.get("/members").content.decode()
    assert "is deactivated and signed out everywhere" in page
    assert ">Activate<" in row_of(page, member_user.email)
    assert change(admin_browser, member_user, "activate").status_code == 302
    member_user.refresh_from_db()
    assert member_user.status == UserStatus.ACTIVE


def test_an_invited_person_is_not_activated_by_hand(admin_browser, org):
    invited = UserFactory(organization=org, status=UserStatus.INVITED)
    r = change(admin_browser, invited, "activate")
    assert r.status_code == 409 and "accepting the invitation" in r.content.decode()


def test_removing_a_member_keeps_their_events(admin_browser, member_user):
    services.audit_record(organization=member_user.organization, action="auth.login", actor=member_user)
    page = admin_browser.get("/members").content.decode()
    assert 'data-confirm="Remove ' in row_of(page, member_user.email)
    r = change(admin_browser, member_user, "remove")
    assert r.status_code == 302 and not User.objects.filter(pk=member_user.pk).exists()
    assert f"({member_user.email}) is removed" in admin_browser.get("/members").content.decode()
    audit = admin_browser.get("/audit", {"actor": member_user.email}).content.decode()
    assert "auth.login" in audit


def test_an_admin_who_steps_down_leaves_the_page(admin_browser, admin_user, org):
    UserFactory(organization=org, role=Role.ADMIN)
    r = change(admin_browser, admin_user, "role", role="member")
    assert (r.status_code, r["Location"]) == (302, "/")
    assert admin_browser.get("/members").status_code == 403


def test_another_organizations_member_is_not_found(admin_browser):
    stranger = UserFactory(role=Role.MEMBER)
    for action, fields in (("role", {"role": "viewer"}), ("deactivate", {}), ("remove", {})):
        assert change(admin_browser, stranger, action, **fields).status_code == 404
    stranger.refresh_from_db()
    assert (stranger.role, stranger.status) == (Role.MEMBER, UserStatus.ACTIVE)


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_get_the_403_page_and_change_nothing(org, admin_user, role):
    person = UserFactory(organization=org, role=role)
    client = browser_client(person)
    for path in ("/members", "/audit"):
        r = client.get(path)
        assert r.status_code == 403 and "text/html" in r["Content-Type"] and admin_user.email not in r.content.decode()
    nav = client.get("/account").content.decode()
    assert 'href="/members"' not in nav and 'href="/audit"' not in nav
    for body in (
        {"action": "invite", "email": "x@example.com", "name": "X", "role": "admin"},
        {"action": "role", "member": str(person.pk), "role": "admin"},
        {"action": "role", "member": str(admin_user.pk), "role": "viewer"},
        {"action": "deactivate", "member": str(admin_user.pk)},
        {"action": "remove", "member": str(admin_user.pk)},
    ):
        assert client.post("/members", body).status_code == 403, body
    assert User.objects.count() == 2 and not mail.outbox
    person.refresh_from_db()
    admin_user.refresh_from_db()
    assert (person.role, admin_user.role, admin_user.status) == (role, Role.ADMIN, UserStatus.ACTIVE)
    assert not AuditEvent.objects.filter(action__startswith="member.").exists()


def test_the_members_table_is_paginated_in_a_bounded_number_of_queries(
    admin_browser, org, django_assert_max_num_queries
):
    UserFactory.create_batch(60, organization=org, role=Role.VIEWER)
    with django_assert_max_num_queries(6):
        first = admin_browser.get("/members").content.decode()
    assert first.count('form="member-remove"') == 50 and "1\N{EN DASH}50 of 61 members" in first
    second = admin_browser.get("/members?page=2").content.decode()
    assert second.count('form="member-remove"') == 11


# --- audit log -----------------------------------------------------------------------------------


@pytest.fixture
def events(org, admin_user, member_user):
    services.audit_record(organization=org, action="auth.login", actor=admin_user, ip_address="192.0.2.1")
    services.audit_record(
        organization=org,
        action="member.updated",
        actor=admin_user,
        target_type="user",
        target_id=member_user.pk,
        metadata={"email": member_user.email, "changes": {"role": ["member", "viewer"]}},
    )
    services.audit_record(organization=org, action="auth.login", actor=member_user)
    services.audit_record(organization=UserFactory().organization, action="auth.login")  # another organization's


def listed_actions(response) -> list[str]:
    return re.findall(r'class="mono nowrap">([a-z_.]+)</a>', response.content.decode())


def test_the_audit_log_is_newest_first_with_who_what_and_details(admin_browser, events, member_user):
    r = admin_browser.get("/audit")
    page = r.content.decode()
    assert r.status_code == 200 and "<caption>Audit events</caption>" in page
    assert listed_actions(r) == ["auth.login", "member.updated", "auth.login"]
    row = row_of(page, "member.updated")
    assert "changes: {&quot;role&quot;: [&quot;member&quot;, &quot;viewer&quot;]}" in row
    assert f'title="{member_user.pk}"' in row and "192.0.2.1" in page
    for action in AUDIT_ACTIONS:
        assert f'<option value="{action}"' in page


def test_the_audit_log_filters_by_action_and_by_actor_email_or_id(admin_browser, events, admin_user, member_user):
    assert listed_actions(admin_browser.get("/audit", {"action": "auth.login"})) == ["auth.login", "auth.login"]
    assert listed_actions(admin_browser.get("/audit", {"actor": member_user.email.upper()})) == ["auth.login"]
    assert listed_actions(admin_browser.get("/audit", {"actor": str(admin_user.pk)})) == [
        "member.updated",
        "auth.login",
    ]
    both = admin_browser.get("/audit", {"action": "auth.login", "actor": admin_user.email})
    page = both.content.decode()
    assert listed_actions(both) == ["auth.login"]
    assert '<option value="auth.login" selected>' in page and f'value="{admin_user.email}"' in page
    empty = admin_browser.get("/audit", {"action": "api_key.created"})
    assert "No events match these filters." in empty.content.decode()


@pytest.mark.parametrize("query, field", [({"actor": "nobody"}, "actor"), ({"action": "x.made_up"}, "action")])
def test_a_bad_filter_is_shown_beside_its_field(admin_browser, events, query, field):
    r = admin_browser.get("/audit", query)
    page = r.content.decode()
    assert r.status_code == 400 and f'id="f-{field}-error"' in page and listed_actions(r) == []


def test_the_audit_log_is_paginated_in_a_bounded_number_of_queries(
    admin_browser, org, admin_user, django_assert_max_num_queries
):
    for n in range(60):
        services.audit_record(organization=org, action="auth.login", actor=admin_user, metadata={"n": n})
    with django_assert_max_num_queries(7):
        first = admin_browser.get("/audit", {"action": "auth.login"})
    page = first.content.decode()
    assert len(listed_actions(first)) == 50 and "1\N{EN DASH}50 of 60 events" in page
    assert 'href="?action=auth.login&amp;page=2"' in page, "the next page keeps the filter"
    assert len(listed_actions(admin_browser.get("/audit", {"action": "auth.login", "page": 2}))) == 10


def test_every_action_the_code_records_is_in_the_audit_filter():
    recorded = set()
    packages = [path for path in Path(settings.BASE_DIR).iterdir() if (path / "__init__.py").exists()]
    for path in (module for package in packages for module in package.rglob("*.py")):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "audit_record"
            ):
                for keyword in node.keywords:
                    if keyword.arg == "action" and isinstance(keyword.value, ast.Constant):
                        recorded.add(keyword.value.value)
    assert len(recorded) > 15, recorded
    assert recorded <= set(AUDIT_ACTIONS), recorded - set(AUDIT_ACTIONS)
