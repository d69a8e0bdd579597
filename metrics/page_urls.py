from django.urls import path

from metrics import pages

urlpatterns = [
    path("", pages.overview, name="page-overview"),
    path("first-agent/key", pages.first_agent_key, name="page-first-agent-key"),
    path("metrics", pages.metric_explorer, name="page-metrics"),
    path("metrics/panel", pages.agent_panel, name="page-metrics-panel"),
    path("rules", pages.rules, name="page-rules"),
    path("rules/new", pages.rule_new, name="page-rule-new"),
    path("rules/test", pages.rules_test, name="page-rules-test"),
    path("rules/<uuid:config_id>", pages.rule_edit, name="page-rule"),
    path("rules/<uuid:config_id>/enabled", pages.rule_enabled, name="page-rule-enabled"),
    path("rules/<uuid:config_id>/delete", pages.rule_delete, name="page-rule-delete"),
]
