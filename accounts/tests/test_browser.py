"""The accounts pages in a real browser (Chromium via Playwright, against a live Daphne)."""

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from playwright.sync_api import expect

from accounts.models import Role
from accounts.tests.factories import UserFactory

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "Browser-passw0rd-1"


def person(role=Role.ADMIN, **kwargs):
    # The tests hash with MD5 for speed (conftest); the live server only knows the production
    # hashers, so a person who signs in through the form gets a PBKDF2 hash.
    user = UserFactory(role=role, **kwargs)
    user.password = make_password(PASSWORD, hasher=PBKDF2PasswordHasher())
    user.save(update_fields=["password"])
    return user


def test_sign_in_through_the_form_then_sign_out(page_as):
    user = person(name="Ada Lovelace")
    page = page_as()
    page.goto("/account")
    expect(page).to_have_url("/login?next=%2Faccount")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    expect(page.get_by_label("Email")).to_have_value(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url("/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_role("link", name="Ada Lovelace (admin)")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url("/login")
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto("/account")
    expect(page).to_have_url("/login?next=%2Faccount")
    assert page.console_errors == []


def test_register_a_new_organization(page_as):
    page = page_as()
    page.goto("/register")
    page.get_by_label("Organization name").fill("Browser Fleet")
    page.get_by_label("Your name").fill("Grace")
    page.get_by_label("Email").fill("grace@fleet.test")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Create organization").click()
    expect(page.locator("#f-password-error")).to_be_visible()
    expect(page.get_by_label("Organization name")).to_have_value("Browser Fleet")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create organization").click()
    page.goto("/account")
    expect(page.get_by_text("Browser Fleet").first).to_be_visible()
    assert page.console_errors == []


def test_the_menu_opens_on_a_phone(page_as):
    page = page_as(person(), viewport=(390, 844))
    page.goto("/account")
    account_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents")
    expect(account_link).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(account_link).to_be_visible()
    assert page.console_errors == []


def test_a_viewer_sees_no_admin_pages_in_the_menu(page_as):
    page = page_as(person(Role.VIEWER))
    page.goto("/account")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Agents")).to_be_visible()
    for admin_page in ("API keys", "Members", "Audit log", "Notifications"):
        expect(nav.get_by_role("link", name=admin_page)).to_have_count(0)
