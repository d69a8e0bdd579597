import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command, load_command_class
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from apikeys.tests.factories import make_key

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def register(raw: str):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client.post("/api/v1/edge/register", {"name": "cli-agent"}, format="json")


def test_create_rotate_revoke_and_list_from_the_shell(org):
    created = json.loads(
        run("create_api_key", "--org", org.slug, "--name", "fleet", "--permission", "edge:register", "--json")
    )
    raw, key = created["raw_key"], created["api_key"]
    assert key["organization"] == org.slug and key["created_by"] is None and key["permissions"] == ["edge:register"]
    assert register(raw).status_code == 201

    rotated = json.loads(run("rotate_api_key", key["key_prefix"], "--grace-seconds", "0", "--json"))
    assert rotated["api_key"]["replaces"] == key["id"] and rotated["previous"]["id"] == key["id"]
    assert register(raw).status_code == 401
    assert register(rotated["raw_key"]).status_code == 200

    revoked = json.loads(run("revoke_api_key", rotated["api_key"]["id"], "--json"))
    assert revoked["status"] == "revoked"
    assert register(rotated["raw_key"]).status_code == 401
    assert json.loads(run("revoke_api_key", rotated["api_key"]["id"], "--json"))["status"] == "revoked"

    listed = json.loads(run("list_api_keys", "--org", org.slug, "--json"))
    assert [row["id"] for row in listed] == [rotated["api_key"]["id"], key["id"]]
    assert [row["id"] for row in json.loads(run("list_api_keys", "--status", "revoked", "--json"))] == [
        rotated["api_key"]["id"]
    ]
    assert "raw_key" not in json.dumps(listed) and raw not in json.dumps(listed)

    actions = set(AuditEvent.objects.filter(actor_type="cli").values_list("action", flat=True))
    assert actions == {"api_key.created", "api_key.rotated", "api_key.revoked"}


def test_human_readable_output(org):
    out = run("create_api_key", "--org", org.slug, "--name", "fleet", "--permission", "edge:register")
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("lf_prod_") and register(raw).status_code == 201
    table = run("list_api_keys")
    assert raw[:16] in table and raw not in table and "active" in table


def test_commands_refuse_bad_input(org):
    with pytest.raises(CommandError, match="No organization"):
        run("create_api_key", "--org", "nope", "--name", "x", "--permission", "edge:register")
    with pytest.raises(CommandError, match="future"):
        run(
            "create_api_key",
            "--org",
            org.slug,
            "--name",
            "x",
            "--permission",
            "edge:register",
            "--expires-at",
            "2001-01-01T00:00:00Z",
        )
    with pytest.raises(CommandError, match="No API key"):
        run("revoke_api_key", "lf_prod_missing0")
    key, _ = make_key(org)
    run("revoke_api_key", str(key.pk))
    with pytest.raises(CommandError, match="revoked"):
        run("rotate_api_key", str(key.pk))
    with pytest.raises(CommandError, match="grace"):
        run("rotate_api_key", str(key.pk), "--grace-seconds", "-5")


@pytest.mark.parametrize("command", ["create_api_key", "rotate_api_key", "revoke_api_key", "list_api_keys"])
def test_commands_have_help(command):
    help_text = load_command_class("apikeys", command).create_parser("manage.py", command).format_help()
    assert "--json" in help_text and len(help_text.splitlines()) > 5
