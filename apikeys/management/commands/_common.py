"""What the API key commands share: finding the organization and the key, and printing keys."""

import json
import uuid

from django.core.management.base import CommandError

from accounts.models import Organization
from apikeys.models import APIKey
from apikeys.serializers import APIKeySerializer


def organization_by_slug(slug: str) -> Organization:
    try:
        return Organization.objects.get(slug=slug)
    except Organization.DoesNotExist:
        raise CommandError(f"No organization with the slug {slug!r}") from None


def key_by_id_or_prefix(value: str) -> APIKey:
    """A key by its id or by its prefix (lf_prod_aBcDeFgH), as `list_api_keys` shows them."""
    try:
        return APIKey.objects.select_related("organization").get(pk=uuid.UUID(value))
    except ValueError:
        pass
    except APIKey.DoesNotExist:
        raise CommandError(f"No API key with the id {value}") from None
    matches = list(APIKey.objects.select_related("organization").filter(key_prefix=value)[:2])
    if not matches:
        raise CommandError(f"No API key with the id or prefix {value!r}")
    if len(matches) > 1:
        raise CommandError(f"The prefix {value!r} matches several keys; use the id")
    return matches[0]


def key_data(key: APIKey) -> dict:
    return {**APIKeySerializer(key).data, "organization": key.organization.slug}


def print_json(command, data) -> None:
    command.stdout.write(json.dumps(data, indent=2, default=str))
