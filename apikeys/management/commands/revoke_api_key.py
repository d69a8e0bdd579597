from django.core.management.base import BaseCommand

from apikeys import services
from apikeys.management.commands._common import key_by_id_or_prefix, key_data, print_json


class Command(BaseCommand):
    help = "Revoke an API key: it stops working on the very next request, on every server process. Safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("key", help="id or prefix (lf_prod_aBcDeFgH) of the key to revoke")
        parser.add_argument("--json", action="store_true", help="print the revoked key's record as JSON")

    def handle(self, *args, **options):
        key = services.api_key_revoke(key=key_by_id_or_prefix(options["key"]), actor=services.Actor())
        if options["json"]:
            print_json(self, key_data(key))
            return
        self.stdout.write(self.style.SUCCESS(f"Revoked {key.key_prefix} ({key.id}) at {key.revoked_at.isoformat()}"))
