import re

import pytest
from rest_framework.test import APIClient

from apikeys.models import APIKey

pytestmark = pytest.mark.django_db


def test_a_key_created_in_the_admin_shows_its_raw_value_once(operator_client, org):
    r = operator_client.post(
        "/admin/apikeys/apikey/add/",
        {"organization": str(org.pk), "name": "from-admin", "permissions": ["edge:register"], "expires_at": ""},
        follow=True,
    )
    assert r.status_code == 200
    raw = re.search(r"lf_prod_[0-9A-Za-z]{32}", r.content.decode()).group(0)
    key = APIKey.objects.get(name="from-admin")
    assert key.key_prefix == raw[:16] and raw not in key.key_hash
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.post("/api/v1/edge/register", {"name": "a"}, format="json").status_code == 201
    # Never again: neither the change page nor the list shows it.
    for page in (f"/admin/apikeys/apikey/{key.pk}/change/", "/admin/apikeys/apikey/"):
        body = operator_client.get(page).content.decode()
        assert key.key_prefix in body and raw not in body and key.key_hash not in body


def test_the_admin_revoke_action(operator_client, org):
    from apikeys.tests.factories import make_key

    key, raw = make_key(org)
    r = operator_client.post(
        "/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [str(key.pk)]}, follow=True
    )
    assert r.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.post("/api/v1/edge/register", {"name": "a"}, format="json").status_code == 401


@pytest.mark.parametrize(
    "page",
    [
        "/admin/accounts/user/",
        "/admin/accounts/organization/",
        "/admin/accounts/auditevent/",
        "/admin/accounts/authsession/",
        "/admin/accounts/passwordtoken/",
        "/admin/agents/agent/",
        "/admin/apikeys/apikey/",
        "/admin/metrics/metricconfig/",
        "/admin/metrics/series/",
        "/admin/metrics/metricbatch/",
    ],
)
def test_every_admin_list_page_renders(operator_client, page, org):
    from agents.tests.factories import AgentFactory
    from apikeys.tests.factories import make_key

    AgentFactory(organization=org)
    make_key(org)
    assert operator_client.get(page).status_code == 200
    assert operator_client.get(page, {"q": "x"}).status_code == 200
