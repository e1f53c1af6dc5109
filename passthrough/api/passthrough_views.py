"""Native passthrough surfaces: `POST /api/v1/passthrough` and async passthrough (function calls: functions/views.py)."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from connections import hot_cache
from integration_platform.errors import UpstreamTimeout, native_body
from passthrough import async_passthrough, envelopes, services
from passthrough.connection_lookup import caller_secrets, native_connection
from passthrough.formats import remote_response
from passthrough.models import FunctionCall
from passthrough.retries import RETRY_HEADER, requested_retries

ACCOUNT_TOKEN = OpenApiParameter("X-Account-Token", location=OpenApiParameter.HEADER, required=False,
                                 description="The connection's account token (or pass connection_id in the body).")
RETRIES = OpenApiParameter(RETRY_HEADER, int, location=OpenApiParameter.HEADER, required=False,
                           description="Retry an idempotent call (GET, HEAD, PUT, DELETE, OPTIONS) up to this many "
                                       "times (0-3) on a network error, 429 or 5xx, within the sync budget. Ignored "
                                       "for POST and PATCH.")

PassthroughRequest = inline_serializer("PassthroughRequest", {
    "method": serializers.ChoiceField(choices=services.METHODS),
    "path": serializers.CharField(help_text="Relative to the integration's base URL; may carry a query string."),
    "connection_id": serializers.IntegerField(required=False),
    "data": serializers.JSONField(required=False, help_text="Request body: a string is sent as-is, other JSON is serialized."),
    "headers": serializers.DictField(required=False),
    "query": serializers.DictField(required=False),
    "request_format": serializers.ChoiceField(choices=list(envelopes.REQUEST_FORMATS), required=False),
    "base_url_override": serializers.CharField(required=False),
    "normalize_response": serializers.BooleanField(required=False),
})
PassthroughResponse = inline_serializer("PassthroughResponse", {
    "method": serializers.CharField(), "path": serializers.CharField(), "status": serializers.IntegerField(),
    "response": serializers.JSONField(), "response_headers": serializers.DictField(),
    "response_type": serializers.ChoiceField(choices=["JSON", "BASE64_GZIP"]),
})
def sync_timeout(exc: UpstreamTimeout, request) -> UpstreamTimeout:
    async_url = request.build_absolute_uri(reverse("async-passthrough"))
    return UpstreamTimeout(f"The upstream did not answer within the synchronous limit; use async passthrough: POST {async_url}")


@hot_cache.checked_at_permit
class PassthroughView(APIView):
    """Call any path of a connected account's API; its credentials are added. HTTP 200 whatever the upstream status."""

    @extend_schema(request=PassthroughRequest, responses={200: PassthroughResponse}, parameters=[ACCOUNT_TOKEN, RETRIES],
                   tags=["passthrough"])
    def post(self, request):
        connection = native_connection(request, request.data)
        envelope = envelopes.parse(request.data, data_must_be_string=False)
        try:
            response = services.passthrough_execute_retrying(
                connection=connection, method=envelope.method, target=envelope.target(connection.integration),
                headers=envelope.headers, body=envelope.body, dialect=FunctionCall.DIALECT_NATIVE,
                extra_secrets=caller_secrets(request), retries=requested_retries(request))
        except UpstreamTimeout as exc:
            raise sync_timeout(exc, request) from None
        return Response(remote_response(envelope.method, envelope.path, response, normalize=envelope.normalize_response))


AsyncReceipt = inline_serializer("AsyncPassthroughReceipt", {
    "async_passthrough_receipt_id": serializers.UUIDField(), "status_url": serializers.URLField(),
})


class AsyncPassthroughView(APIView):
    """Queue a passthrough call; answers at once with a receipt to poll (results kept 24 h)."""

    @extend_schema(request=PassthroughRequest, responses={202: AsyncReceipt}, parameters=[ACCOUNT_TOKEN], tags=["passthrough"])
    def post(self, request):
        connection = native_connection(request, request.data)
        envelope = envelopes.parse(request.data, data_must_be_string=False)
        receipt = async_passthrough.async_passthrough_create(connection=connection, envelope=envelope,
                                                             dialect=FunctionCall.DIALECT_NATIVE,
                                                             extra_secrets=caller_secrets(request))
        url = request.build_absolute_uri(reverse("async-passthrough-result", args=[receipt.pk]))
        return Response({"async_passthrough_receipt_id": str(receipt.pk), "status_url": url}, status=202)


class AsyncPassthroughResultView(APIView):
    """202 while queued or running, 200 with the passthrough answer, 500 if it failed, 404 if unknown or expired.
    One retrieval per receipt every 10 s (429 with Retry-After)."""

    @extend_schema(responses={200: PassthroughResponse, 202: AsyncReceipt}, tags=["passthrough"])
    def get(self, request, receipt_id):
        receipt = async_passthrough.async_passthrough_get(request.user.organization, receipt_id)
        async_passthrough.retrieval_allowed(receipt.pk)
        if receipt.status == receipt.DONE:
            return Response(receipt.result)
        if receipt.status == receipt.FAILED:
            return Response(native_body("The async passthrough request failed.", [receipt.error]), status=500)
        return Response({"async_passthrough_receipt_id": str(receipt.pk), "status": receipt.status.upper()}, status=202)
