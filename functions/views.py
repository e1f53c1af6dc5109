"""Native typed-function surface: `GET`/`POST /api/v1/functions/{name}` (listing: connections/api/views.py)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from connections import hot_cache
from connections.api.serializers import FunctionSerializer
from functions import services
from integration_platform.errors import InvalidInput, UpstreamTimeout
from passthrough.api.passthrough_views import ACCOUNT_TOKEN, RETRIES, sync_timeout
from passthrough.connection_lookup import account_token, caller_secrets, connection_by_account_token
from passthrough.models import FunctionCall
from passthrough.retries import requested_retries

FunctionCallResponse = inline_serializer("FunctionCallResponse", {
    "network_code": serializers.CharField(help_text="Upstream HTTP status, as a 3-digit string."),
    "output": serializers.JSONField(),
})


@hot_cache.checked_at_permit
class FunctionView(APIView):
    """`GET` a function; `POST` calls it for the connection named by `X-Account-Token`."""

    @extend_schema(responses={200: FunctionSerializer}, tags=["functions"])
    def get(self, request, name):
        return Response(FunctionSerializer(services.callable_function(name)).data)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: FunctionCallResponse},
                   parameters=[ACCOUNT_TOKEN, RETRIES], tags=["functions"],
                   description="The body is the arguments object, valid against the function's `parameters` "
                               "(a passthrough function takes `method`, `url`, `body`, `headers`, `query`). "
                               "Invalid arguments: 400 listing every violation, nothing sent.")
    def post(self, request, name):
        function = services.callable_function(name)
        connection = connection_by_account_token(request.user.organization, account_token(request))
        if connection.integration_id != function.integration_id:
            raise InvalidInput(services.INVALID_INPUT,
                               [f"X-Account-Token: This connection is not a {function.integration.name} account."])
        try:
            output = services.function_call(function=function, connection=connection, arguments=request.data,
                                            dialect=FunctionCall.DIALECT_NATIVE, extra_secrets=caller_secrets(request),
                                            retries=requested_retries(request))
        except UpstreamTimeout as exc:
            raise sync_timeout(exc, request) from None
        return Response(output)
