from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets

from integration_platform.errors import InvalidInput
from integration_platform.validation import safe_id
from passthrough.api.serializers import FunctionCallSerializer
from passthrough.models import FunctionCall

CALL_FILTERS = {
    "connection": "connection_id",
    "integration": "integration__slug",
    "function": "function__name",
    "dialect": "dialect",
    "mode": "mode",
    "method": "method__iexact",
    "status": "response_status",
}


class FunctionCallViewSet(viewsets.ReadOnlyModelViewSet):
    """The function-call log of the caller's organization, newest first."""

    serializer_class = FunctionCallSerializer
    queryset = FunctionCall.objects.none()  # for the schema; get_queryset scopes to the caller

    @extend_schema(parameters=[OpenApiParameter(name) for name in CALL_FILTERS]
                   + [OpenApiParameter("created_after", description="ISO-8601"),
                      OpenApiParameter("created_before", description="ISO-8601")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        calls = FunctionCall.objects.filter(organization=self.request.user.organization).select_related("integration", "function")
        if self.action != "list":
            return calls
        params = self.request.query_params
        lookups = {field: params[name] for name, field in CALL_FILTERS.items() if params.get(name)}
        for name, field in (("connection", "connection_id"), ("status", "response_status")):
            if field in lookups and safe_id(lookups[field]) is None:
                raise InvalidInput("Invalid input.", [f"{name}: Must be an integer."])
        for name, lookup in (("created_after", "created_at__gt"), ("created_before", "created_at__lt")):
            if params.get(name):
                try:
                    moment = parse_datetime(params[name])
                except ValueError:  # well-formed but impossible, e.g. month 13
                    moment = None
                if moment is None:
                    raise InvalidInput("Invalid input.", [f"{name}: Must be an ISO-8601 date-time."])
                lookups[lookup] = moment
        return calls.filter(**lookups)
