from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"

    def ready(self):
        from django.db.models.signals import pre_delete

        from agents.models import Agent
        from metrics import dashboard
        from streaming import selectors, services

        def end_sessions_of_deleted_agent(sender, instance, **kwargs):
            services.sessions_end_for_deleted_agent(agent=instance)

        pre_delete.connect(
            end_sessions_of_deleted_agent, sender=Agent, dispatch_uid="streaming-agent-deleted", weak=False
        )
        dashboard.register_section(
            "streams",
            lambda organization_id: {"active": selectors.sessions_open(organization_id=organization_id).count()},
        )
