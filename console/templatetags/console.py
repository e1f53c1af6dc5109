from datetime import timedelta

from django import template
from django.utils import timezone

from passthrough.admin import FAILED, FAILURE, changelist_url
from passthrough.models import FunctionCall

register = template.Library()


@register.inclusion_tag("console/failed_calls_link.html")
def failed_calls_last_hour():
    """The admin index's first line: how many calls failed in the last hour, linked to them (one indexed count)."""
    since = timezone.now() - timedelta(hours=1)
    return {"count": FunctionCall.objects.filter(FAILURE, created_at__gte=since).count(),
            "url": changelist_url(FunctionCall, outcome=FAILED, since="1h")}
