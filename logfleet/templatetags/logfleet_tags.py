"""Template helpers every dashboard page may use (a builtin: no {% load %} needed)."""

import json
from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def get_item(mapping, key):
    """mapping[key], or None: a form's value or error by a field name held in a variable."""
    if mapping is None:
        return None
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def as_json(value) -> str:
    """Indented JSON, for a config shown or edited as text."""
    return json.dumps(value, indent=2, sort_keys=True)


@register.filter
def brief(value) -> str:
    """A value on one line: text as it is, anything else as compact JSON (an audit event's details)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "), sort_keys=True)


@register.filter
def ago(moment: datetime | None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'; 'never' for None."""
    if moment is None:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@register.filter
def labels_text(labels: dict | None) -> str:
    """Labels as the `k:v` words a filter takes."""
    return " ".join(f"{key}:{value}" for key, value in sorted((labels or {}).items()))


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """This page's query string with some parameters changed (None or '' removes one): sort and
    page links that keep the filters."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
