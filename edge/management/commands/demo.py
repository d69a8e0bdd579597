"""`manage.py demo`: a demo organization, user, API key and the published nginx rules, and the
exact commands that start an agent on a generated log file. Safe to re-run."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Organization, Role, User
from apikeys import services as key_services
from apikeys.models import APIKey, APIKeyStatus
from metrics import engine
from metrics import services as metric_services
from metrics.examples import nginx_example
from metrics.models import MetricConfig

ORG_SLUG = "demo"
EMAIL = "demo@example.com"
PASSWORD = "logfleet-demo-password"
KEY_NAME = "demo-agent"


class Command(BaseCommand):
    help = (
        "Create (or reuse) a demo organization, user and nginx metric config, issue a fresh agent API key "
        "(the previous demo key is revoked), and print the agent and log generator command lines."
    )

    def add_arguments(self, parser):
        parser.add_argument("--server", default=settings.PUBLIC_URL, help="URL the agent talks to")
        parser.add_argument(
            "--log-file",
            default=str(Path(tempfile.gettempdir()) / "logfleet-demo" / "access.log"),
            help="the nginx log to tail",
        )

    @transaction.atomic
    def handle(self, *args, **options):
        organization, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": "Demo"})
        user = User.objects.filter(email=EMAIL).first()
        if user is None:
            user = User.objects.create_user(
                email=EMAIL, password=PASSWORD, name="Demo Admin", organization=organization, role=Role.ADMIN
            )
        example = nginx_example()
        if not MetricConfig.objects.filter(organization=organization, name=example["name"]).exists():
            normalized, _rules = engine.compile_rules(example["metrics"])
            metric_services.metric_config_create(
                organization=organization, actor=user, **{**example, "metrics": normalized}
            )
        for old in APIKey.objects.filter(organization=organization, name=KEY_NAME).with_status(APIKeyStatus.ACTIVE):
            key_services.api_key_revoke(key=old, actor=key_services.Actor())
        _key, raw = key_services.api_key_create(
            organization=organization,
            name=KEY_NAME,
            permissions=["edge:register", "edge:heartbeat", "edge:metrics", "edge:stream"],
            actor=key_services.Actor(),
        )
        log_file = Path(options["log_file"])
        python = ".venv/bin/python"
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  log in: {EMAIL} / {PASSWORD}   (organization '{organization.slug}')")
        self.stdout.write("1. Write nginx access lines:")
        self.stdout.write(f"   mkdir -p {log_file.parent} && {python} -m edge.agent.loggen --file {log_file} --rate 20")
        self.stdout.write("2. Start the agent (in another terminal):")
        self.stdout.write(
            f"   {python} -m edge.agent --server {options['server']} --api-key {raw} --name store-01 "
            f"--source nginx={log_file} --metrics-interval 10"
        )
