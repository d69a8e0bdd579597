"""The admin pages in a real browser (Chromium via Playwright, against a live Daphne): API keys,
members and the audit log, one person's flow per test."""

import re

import pytest
from playwright.sync_api import expect

from accounts import services
from accounts.models import Role
from accounts.tests.factories import OrganizationFactory, UserFactory

pytestmark = [pytest.mark.live, pytest.mark.browser]

RAW_KEY = re.compile(r"^lf_(prod|dev)_[0-9A-Za-z]{32}$")


def admin():
    return UserFactory(organization=OrganizationFactory(), role=Role.ADMIN, name="Ada Admin")


def key_row(page, name: str, status: str):
    return page.get_by_role("table", name="API keys").get_by_role("row").filter(has_text=name).filter(has_text=status)


def test_create_a_key_see_it_once_rotate_it_and_revoke_the_old_one(page_as):
    page = page_as(admin())
    answers = []  # what the person answers each confirmation with, in turn (then yes)
    page.on("dialog", lambda dialog: dialog.accept() if not answers or answers.pop(0) else dialog.dismiss())
    page.goto("/keys")
    expect(page.get_by_role("table", name="API keys")).to_contain_text("No API keys yet")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#f-name-error")).to_be_visible()  # a 400, swapped in by htmx beside the field
    page.get_by_label("Name").fill("store fleet")
    page.get_by_role("button", name="Create key").click()
    first = page.get_by_label("New API key")
    expect(first).to_have_text(RAW_KEY)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    raw = first.text_content()
    expect(key_row(page, "store fleet", "active")).to_have_count(1)

    page.get_by_label("When a key is rotated, the old one keeps working for").select_option(label="1 hour")
    key_row(page, "store fleet", "active").get_by_role("button", name="Rotate").click()
    expect(page.get_by_text("keeps working until")).to_be_visible()
    expect(page.get_by_label("New API key")).not_to_have_text(raw)
    expect(key_row(page, "store fleet", "rotating")).to_have_count(1)

    answers.append(False)  # "Revoke …?" — no: nothing happens
    key_row(page, "store fleet", "rotating").get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(300)
    expect(key_row(page, "store fleet", "rotating")).to_have_count(1)
    key_row(page, "store fleet", "rotating").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(key_row(page, "store fleet", "revoked")).to_have_count(1)
    expect(key_row(page, "store fleet", "active")).to_have_count(1)
    expect(page.get_by_label("New API key")).to_have_count(0)  # never shown again
    assert raw not in page.content()
    assert page.console_errors == []


def test_invite_a_member(page_as):
    page = page_as(admin())
    page.goto("/members")
    page.get_by_label("Email").fill("grace@fleet.test")
    page.get_by_label("Name", exact=True).fill("Grace Hopper")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("grace@fleet.test is invited as viewer")
    row = page.get_by_role("table", name="Members").get_by_role("row").filter(has_text="grace@fleet.test")
    expect(row).to_contain_text("invited")
    expect(row.get_by_label("Role of Grace Hopper")).to_have_value("viewer")
    assert page.console_errors == []


def test_the_audit_log_lists_events_and_filters_them(page_as):
    person = admin()
    other = UserFactory(organization=person.organization, role=Role.MEMBER, email="mo@fleet.test")
    for actor in (person, other, person):
        services.audit_record(organization=person.organization, action="auth.login", actor=actor)
    services.audit_record(organization=person.organization, action="member.invited", actor=person)
    page = page_as(person, viewport=(390, 844))
    page.goto("/audit")
    table = page.get_by_role("table", name="Audit events")
    expect(table.get_by_role("row")).to_have_count(5)  # the header and four events
    expect(table.get_by_role("row").nth(1)).to_contain_text("member.invited")  # newest first
    page.get_by_label("Action").select_option("auth.login")
    page.get_by_label("Actor").fill("mo@fleet.test")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/audit\?action=auth.login&actor=mo%40fleet.test$"))
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table.get_by_role("row").nth(1)).to_contain_text("mo@fleet.test")
    page.get_by_role("link", name="Clear").click()
    expect(table.get_by_role("row")).to_have_count(5)
    assert page.console_errors == []
