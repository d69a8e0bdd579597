"""A new password ends every session of the user, wherever it was set (API, admin, manage.py)."""

import pytest
from django.conf import settings

from accounts.models import AuthSession
from bench.live import database_url_of_test_db
from conftest import client_for
from logfleet.testing import assert_error, manage_py

NEW_PASSWORD = "An0ther-sturdy-passphrase"


def test_a_password_set_in_the_admin_ends_the_users_sessions(admin_user, operator_client):
    api = client_for(admin_user)
    assert api.get("/api/v1/auth/me").status_code == 200
    r = operator_client.post(
        f"/admin/accounts/user/{admin_user.pk}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert r.status_code == 302, r.content[:500]
    assert_error(api.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert AuthSession.objects.get(user=admin_user).end_reason == "password_changed"


@pytest.mark.django_db(transaction=True)
def test_manage_py_changepassword_ends_the_users_sessions(admin_user):
    api = client_for(admin_user)
    assert api.get("/api/v1/auth/me").status_code == 200
    result = manage_py(
        "changepassword",
        admin_user.email,
        env={"DATABASE_URL": database_url_of_test_db(), "SECRET_KEY": settings.SECRET_KEY},
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr
    assert_error(api.get("/api/v1/auth/me"), 401, "not_authenticated")


def test_saving_a_user_without_a_new_password_keeps_the_sessions(db, admin_user):
    api = client_for(admin_user)
    admin_user.name = "Renamed"
    admin_user.save()
    assert api.get("/api/v1/auth/me").status_code == 200
