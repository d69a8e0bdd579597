"""`manage.py demo`: a demo organization, user, API key and the published nginx rules, and the
exact commands that start an agent on a generated log file. Safe to re-run."""

import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Organization, Role, User
from apikeys import services as key_services
from logfleet.errors import DomainError, as_command_error
from metrics import services as metric_services
from metrics.examples import nginx_example
from metrics.models import MetricConfig

ORG_SLUG = "demo"
EMAIL = "demo@example.com"
KEY_NAME = "demo-agent"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _default_server() -> str:
    """PUBLIC_URL when it was set, else this machine's `make run` on PORT."""
    return settings.PUBLIC_URL if os.environ.get("PUBLIC_URL") else f"http://localhost:{settings.PORT}"


class Command(BaseCommand):
    help = (
        "Create (or reuse) a demo organization, admin user and nginx metric config, issue an agent API key "
        "(earlier demo keys keep working), and print the agent and log generator command lines. "
        "Refuses to run against a deployment (a PUBLIC_URL that is not local) unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", default=None, help="URL the agent talks to (default: this server)")
        parser.add_argument(
            "--log-file",
            default=str(Path(tempfile.gettempdir()) / "logfleet-demo" / "access.log"),
            help="the nginx log to tail",
        )
        parser.add_argument(
            "--password", help="the demo user's password (default: a random one, printed when the user is created)"
        )
        parser.add_argument("--force", action="store_true", help="create the demo data on a deployment too")

    @transaction.atomic
    def handle(self, *args, **options):
        if urlsplit(settings.PUBLIC_URL).hostname not in LOCAL_HOSTS and not options["force"]:
            raise CommandError(
                f"PUBLIC_URL is {settings.PUBLIC_URL}: this looks like a deployment, where a demo admin account "
                "does not belong. Run it on a development server, or pass --force."
            )
        organization, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": "Demo"})
        user = User.objects.filter(email=EMAIL).first()
        password = options["password"]
        if user is None:
            password = password or secrets.token_urlsafe(12)
            user = User.objects.create_user(
                email=EMAIL, password=password, name="Demo Admin", organization=organization, role=Role.ADMIN
            )
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        try:  # the services check what they write; a refusal (the organization's limit of keys) is said
            raw = self._data(organization, user)
        except DomainError as exc:
            raise as_command_error(exc) from None
        log_file = Path(options["log_file"])
        python = ".venv/bin/python"
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        shown = password or "(unchanged; set a new one with --password)"
        self.stdout.write(f"  log in: {EMAIL} / {shown}   (organization '{organization.slug}')")
        self.stdout.write("1. Write nginx access lines:")
        self.stdout.write(f"   mkdir -p {log_file.parent} && {python} -m edge.agent.loggen --file {log_file} --rate 20")
        self.stdout.write("2. Start the agent (in another terminal; the key goes in the environment, not in ps):")
        self.stdout.write(
            f"   LOGFLEET_API_KEY={raw} {python} -m edge.agent --server {options['server'] or _default_server()} "
            f"--name store-01 --source nginx={log_file} --metrics-interval 10"
        )

    def _data(self, organization, user) -> str:
        """The demo's metric config (once) and a new agent key (each run: the earlier ones are left
        alone, so an agent already running goes on); the new key's raw value."""
        example = nginx_example()
        if not MetricConfig.objects.filter(organization=organization, name=example["name"]).exists():
            metric_services.metric_config_create(organization=organization, actor=user, **example)
        _key, raw = key_services.api_key_create(
            organization=organization,
            name=KEY_NAME,
            permissions=["edge:register", "edge:heartbeat", "edge:metrics", "edge:stream"],
            actor=key_services.Actor(),
        )
        return raw
