from django.core.management.base import BaseCommand

from apikeys.management.commands._common import key_data, organization_by_slug, print_json
from apikeys.models import APIKey, APIKeyStatus


class Command(BaseCommand):
    help = "List API keys (never the keys themselves), newest first."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="only this organization (slug)")
        parser.add_argument("--status", choices=APIKeyStatus.values, help="only keys with this status")
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args, **options):
        queryset = APIKey.objects.select_related("organization").order_by("-created_at", "-id")
        if options["org"]:
            queryset = queryset.filter(organization=organization_by_slug(options["org"]))
        if options["status"]:
            queryset = queryset.with_status(options["status"])
        rows = [key_data(key) for key in queryset]
        if options["json"]:
            print_json(self, rows)
            return
        header = f"{'ID':36}  {'PREFIX':18}  {'ORGANIZATION':20}  {'STATUS':8}  {'LAST USED':25}  NAME"
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(
                f"{row['id']:36}  {row['key_prefix']:18}  {row['organization'][:20]:20}  {row['status']:8}  "
                f"{row['last_used_at'] or '-':25}  {row['name']}"
            )
