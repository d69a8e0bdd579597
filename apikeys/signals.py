"""A deleted key (the Django admin, or the deletion of its organization) ends like a revoked one:
its open WebSockets close and its cached record is refreshed, so HTTP refuses it at once."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apikeys import services
from apikeys.models import APIKey
from logfleet import realtime


@receiver(post_delete, sender=APIKey, dispatch_uid="apikeys.key_deleted")
def key_deleted(sender, instance: APIKey, **kwargs):
    realtime.credential_ended(realtime.api_key_group(instance.pk), "The API key was deleted")
    services.key_records_changed(instance.key_prefix)
