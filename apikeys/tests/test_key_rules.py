"""What a key may be called and when it may expire is one rule (apikeys.services.api_key_check): the
API, the admin's forms and the shell refuse the same key with the same words, and store nothing."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from apikeys.models import APIKey
from apikeys.tests.factories import make_key
from logfleet.testing import assert_error

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys"
ADD = "/admin/apikeys/apikey/add/"
PAST = ("2001-01-01", "00:00:00")

BAD_KEYS = [
    pytest.param("name", "x" * 129, None, "must be 1 to 128 characters", id="name too long"),
    pytest.param("name", "   ", None, "must be 1 to 128 characters", id="name blank"),
    pytest.param("expires_at", "k", PAST, "must be in the future", id="expiry past"),
]


def by_api(client, name, expires):
    body = {"name": name, "permissions": ["edge:register"]}
    if expires:
        body["expires_at"] = f"{expires[0]}T{expires[1]}Z"
    return assert_error(client.post(KEYS, body, format="json"), 400, "validation_error")["details"]


def by_admin(client, org, name, expires):
    date, time = expires or ("", "")
    data = {"organization": str(org.pk), "name": name, "permissions": ["edge:register"]}
    r = client.post(ADD, {**data, "expires_at_0": date, "expires_at_1": time})
    assert r.status_code == 200, r.status_code  # the form again, with its errors
    return r.context["adminform"].form.errors


def by_shell(org, name, expires):
    args = ["--org", org.slug, "--name", name, "--permission", "edge:register"]
    if expires:
        args += ["--expires-at", f"{expires[0]}T{expires[1]}Z"]
    with pytest.raises(CommandError) as refused:
        call_command("create_api_key", *args, stdout=StringIO())
    return str(refused.value)


@pytest.mark.parametrize("field, name, expires, message", BAD_KEYS)
def test_the_api_the_admin_and_the_shell_refuse_a_bad_key_alike(
    admin_client, operator_client, org, field, name, expires, message
):
    assert by_api(admin_client, name, expires)[field] == message
    assert by_admin(operator_client, org, name, expires)[field] == [message]
    assert f"{field}: {message}" in by_shell(org, name, expires)
    assert not APIKey.objects.exists()
    assert not AuditEvent.objects.filter(action="api_key.created").exists()


def test_each_surface_names_every_field_that_breaks_the_rule(admin_client, operator_client, org):
    details = by_api(admin_client, "", PAST)
    assert details == {"name": "must be 1 to 128 characters", "expires_at": "must be in the future"}
    errors = by_admin(operator_client, org, "", PAST)
    assert errors["name"] == ["must be 1 to 128 characters"] and errors["expires_at"] == ["must be in the future"]
    said = by_shell(org, "", PAST)
    assert "name: must be 1 to 128 characters" in said and "expires_at: must be in the future" in said


def test_every_surface_stores_the_name_trimmed(admin_client, operator_client, org):
    assert (
        admin_client.post(KEYS, {"name": " api ", "permissions": ["edge:register"]}, format="json").status_code == 201
    )
    r = operator_client.post(ADD, {"organization": str(org.pk), "name": " admin ", "permissions": ["edge:register"]})
    assert r.status_code == 302, r.context["adminform"].form.errors
    call_command(
        "create_api_key", "--org", org.slug, "--name", " shell ", "--permission", "edge:register", stdout=StringIO()
    )
    assert set(APIKey.objects.values_list("name", flat=True)) == {"api", "admin", "shell"}


def test_renaming_a_key_in_the_admin_follows_the_same_rule(operator_client, org):
    key, _ = make_key(org, name="before")
    change = f"/admin/apikeys/apikey/{key.pk}/change/"
    r = operator_client.post(change, {"name": "x" * 129})
    assert r.status_code == 200
    assert r.context["adminform"].form.errors["name"] == ["must be 1 to 128 characters"]
    assert operator_client.post(change, {"name": " after "}).status_code == 302
    key.refresh_from_db()
    assert key.name == "after"


@pytest.mark.parametrize("grace", [-1, 604801])
def test_the_api_and_the_shell_refuse_a_grace_out_of_bounds_alike(admin_client, org, grace):
    key, _ = make_key(org)
    r = admin_client.post(f"{KEYS}/{key.pk}/rotate", {"grace_seconds": grace}, format="json")
    message = "must be between 0 and 604800 seconds"
    assert assert_error(r, 400, "validation_error")["details"] == {"grace_seconds": message}
    with pytest.raises(CommandError, match=f"grace_seconds: {message}"):
        call_command("rotate_api_key", str(key.pk), "--grace-seconds", str(grace), stdout=StringIO())
    assert APIKey.objects.count() == 1
