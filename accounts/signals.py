"""Open WebSockets hear about every change to a user, whoever makes it.

The services end sessions themselves (accounts.services); these receivers cover the changes that
do not go through them: an operator editing or deleting a user in the Django admin, and the
deletion of an organization, which deletes its users.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from logfleet import realtime

# The fields a viewer's socket depends on (accounts.services.session_standing).
WATCHED_FIELDS = {"status", "organization", "role", "password"}


@receiver(post_save, sender=User, dispatch_uid="accounts.user_saved")
def user_saved(sender, instance: User, created: bool, update_fields=None, **kwargs):
    if created or (update_fields is not None and not WATCHED_FIELDS & set(update_fields)):
        return
    realtime.credential_check(realtime.user_group(instance.pk))


@receiver(post_delete, sender=User, dispatch_uid="accounts.user_deleted")
def user_deleted(sender, instance: User, **kwargs):
    realtime.credential_ended(realtime.user_group(instance.pk), "The account was deleted")
