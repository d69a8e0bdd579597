"""What follows a change to a user, whoever makes it (the API, the Django admin, `manage.py`).

- A new password ends every session of the user (`manage.py changepassword` and the admin's
  password form do not go through accounts.services).
- Open WebSockets hear about every change they depend on, and about a deleted user (also when
  its organization is deleted).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import sessions_end_all
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


@receiver(post_save, sender=User, dispatch_uid="accounts.sessions_end_on_password")
def password_saved(sender, instance: User, created: bool, **kwargs):
    """Django keeps the raw password in `_password` from set_password() until save() returns."""
    if not created and getattr(instance, "_password", None) is not None:
        sessions_end_all(user=instance, reason=getattr(instance, "password_change_reason", "password_changed"))
