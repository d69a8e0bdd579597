"""An agent's open WebSocket closes when its key is deleted (the Django admin, or the deletion of
its organization), not only when it is revoked through apikeys.services."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apikeys.models import APIKey
from logfleet import realtime


@receiver(post_delete, sender=APIKey, dispatch_uid="apikeys.key_deleted")
def key_deleted(sender, instance: APIKey, **kwargs):
    realtime.credential_ended(realtime.api_key_group(instance.pk), "The API key was deleted")
