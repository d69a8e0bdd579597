from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from apikeys import services
from apikeys.keys import PERMISSIONS
from apikeys.management.commands._common import key_data, organization_by_slug, print_json
from logfleet.errors import DomainError, as_command_error


class Command(BaseCommand):
    help = (
        "Create an API key for an organization and print the raw key (shown only this once). "
        "Example: manage.py create_api_key --org acme --name edge-fleet "
        "--permission edge:register --permission edge:heartbeat --permission edge:metrics"
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="slug of the organization")
        parser.add_argument(
            "--name", required=True, help=f"a name to recognise the key by (1-{services.NAME_MAX_LENGTH} characters)"
        )
        parser.add_argument(
            "--permission",
            action="append",
            required=True,
            choices=PERMISSIONS,
            help="a permission of the key; repeat for several",
        )
        parser.add_argument("--expires-at", help="ISO 8601 time with offset when the key stops working")
        parser.add_argument("--json", action="store_true", help="print the key and its record as JSON")

    def handle(self, *args, **options):
        organization = organization_by_slug(options["org"])
        expires_at = None
        if options["expires_at"]:
            try:  # a well-formed but impossible time (month 13, past year 9999 in UTC) raises
                expires_at = parse_datetime(options["expires_at"])
                expires_at = expires_at.astimezone(UTC) if expires_at and expires_at.tzinfo else None
            except (ValueError, OverflowError):
                expires_at = None
            if expires_at is None:
                raise CommandError("--expires-at must be an ISO 8601 time with an offset, e.g. 2030-01-01T00:00:00Z")
        try:  # the service checks the name and the expiry, and the organization's limit of active keys
            key, raw = services.api_key_create(
                organization=organization,
                name=options["name"],
                permissions=options["permission"],
                expires_at=expires_at,
                actor=services.Actor(),
            )
        except DomainError as exc:
            raise as_command_error(exc) from None
        if options["json"]:
            print_json(self, {"api_key": key_data(key), "raw_key": raw})
            return
        self.stdout.write(self.style.SUCCESS(f"Created API key {key.id} ({key.key_prefix}) for {organization.slug}"))
        self.stdout.write("Store this key now; it will not be shown again:")
        self.stdout.write(raw)
