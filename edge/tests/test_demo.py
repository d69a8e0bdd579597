"""`manage.py demo`: safe to re-run, and a running agent survives it."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import User
from apikeys.models import APIKey

pytestmark = pytest.mark.django_db


def demo(*args) -> str:
    out = io.StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def raw_key(output: str) -> str:
    return re.search(r"LOGFLEET_API_KEY=(lf_\w+)", output).group(1)


def register(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client.post("/api/v1/edge/register", {"name": "store-01"}, format="json").status_code


def test_re_running_the_demo_leaves_the_earlier_key_working(settings):
    first = demo()
    password = re.search(r"demo@example.com / (\S+)", first).group(1)
    assert password != "logfleet-demo-password" and User.objects.get(email="demo@example.com").check_password(password)
    second = demo()
    assert "unchanged" in second and "--api-key" not in second
    assert register(raw_key(first)) == 201 and register(raw_key(second)) == 200
    assert f"--server http://localhost:{settings.PORT} " in second


def test_the_demo_refuses_a_deployment_unless_forced(settings):
    settings.PUBLIC_URL = "https://fleet.example.com"  # a deployment's URL
    with pytest.raises(CommandError, match="deployment"):
        demo()
    assert not User.objects.filter(email="demo@example.com").exists()
    assert "Demo ready" in demo("--force", "--password", "a chosen demo passphrase")


def test_a_refusal_of_the_services_is_a_command_error_and_changes_nothing(settings):
    demo()
    settings.MAX_API_KEYS_PER_ORG = 1  # the first run's key is the one
    with pytest.raises(CommandError, match="at most 1 active API keys"):
        demo("--password", "another demo passphrase")
    assert APIKey.objects.count() == 1
    assert not User.objects.get(email="demo@example.com").check_password("another demo passphrase")
