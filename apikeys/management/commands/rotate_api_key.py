from django.core.management.base import BaseCommand

from apikeys import services
from apikeys.management.commands._common import key_by_id_or_prefix, key_data, print_json
from logfleet.errors import DomainError, as_command_error


class Command(BaseCommand):
    help = (
        "Rotate an API key: create a new key with the same name and permissions and let the old one "
        "work until the grace period ends. Prints the new raw key (shown only this once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("key", help="id or prefix (lf_prod_aBcDeFgH) of the key to rotate")
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=services.DEFAULT_GRACE_SECONDS,
            help=(
                f"how long the old key keeps working, 0-{services.MAX_GRACE_SECONDS} "
                f"(default {services.DEFAULT_GRACE_SECONDS}; 0 stops it at once)"
            ),
        )
        parser.add_argument("--json", action="store_true", help="print the new key and its record as JSON")

    def handle(self, *args, **options):
        old = key_by_id_or_prefix(options["key"])
        try:  # the service checks the grace and that the key is active
            new, raw = services.api_key_rotate(key=old, grace_seconds=options["grace_seconds"], actor=services.Actor())
        except DomainError as exc:
            raise as_command_error(exc) from None
        old.refresh_from_db()
        if options["json"]:
            print_json(
                self,
                {
                    "api_key": key_data(new),
                    "raw_key": raw,
                    "previous": {"id": str(old.id), "expires_at": old.expires_at.isoformat()},
                },
            )
            return
        self.stdout.write(self.style.SUCCESS(f"Rotated {old.key_prefix} into {new.id} ({new.key_prefix})"))
        self.stdout.write(f"The old key works until {old.expires_at.isoformat()}.")
        self.stdout.write("Store the new key now; it will not be shown again:")
        self.stdout.write(raw)
