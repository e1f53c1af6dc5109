"""Merge-compatible dialect: error mapping, auth, pagination and views. Wire contract: ../shared/spec/merge.md.

Every view derives from `MergeView`: API-key auth, `{"detail": ...}` errors with Merge's status codes, and
`account_connection()` for endpoints that need `X-Account-Token`. The routes are in `merge.py`.
"""

import binascii
import logging
import math
import re
from base64 import b64decode, b64encode
from urllib.parse import parse_qs, urlencode

from django.conf import settings
from django.db.models import Q
from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions as drf
from rest_framework.generics import ListAPIView
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from connections import connect, hot_cache
from connections.connect_views import connect_url
from connections.models import Connection
from connections.services import connection_delete
from integration_platform.errors import (
    InvalidInput,
    NotAuthenticated,
    PlatformError,
    UpstreamAnswerUnusable,
    UpstreamTimeout,
    store_outage,
)
from integration_platform.validation import safe_id
from passthrough import async_passthrough, envelopes, services
from passthrough.dialects.merge_serializers import (
    ACCOUNT_STATUSES, EMPTY, ERROR, AccountToken, AsyncReceipt, LinkToken, LinkTokenRequest, MergeAccountDetailsSerializer, MergeLinkedAccountSerializer,
    MergeLinkedAccountsQuerySerializer, MergeSyncStatusSerializer, PassthroughRequest, RemoteResponse)
from passthrough.connection_lookup import account_token, caller_secrets, connection_by_account_token
from passthrough.formats import remote_response
from passthrough.models import FunctionCall
from passthrough.retries import requested_retries
from syncing import services as syncing_services

log = logging.getLogger(__name__)

CATEGORIES = ("accounting", "ats", "calendar", "chat", "crm", "email", "filestorage", "hris", "knowledgebase", "mktg",
              "ticketing")


# --- Errors --------------------------------------------------------------------------------------------------------

# The 4xx statuses of Merge's contract, plus 413 (a body over MAX_REQUEST_BODY_BYTES, as on every surface; the SDK
# does not retry it). Any other client error (403, 409, 415...) is answered as 400, and 405 as 404: the SDK retries
# 409, and clients only expect these.
CLIENT_ERROR_STATUSES = frozenset({400, 401, 404, 408, 413, 429})
FIELD_DETAIL = re.compile(r"^([\w.\[\]-]+): (.+)$", re.S)


def merge_error(status: int, detail: str, errors: dict | None = None, retry_after=None) -> Response:
    """A Merge-style error answer: `{"detail": ..., "errors"?: {field: [messages]}}`."""
    if status == 405:
        status, detail, errors = 404, "Not found.", None
    elif 400 <= status < 500 and status not in CLIENT_ERROR_STATUSES:
        status = 400
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    headers = {}
    if status == 429 or (status == 503 and retry_after):
        headers["Retry-After"] = str(max(1, math.ceil(float(retry_after or 1))))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return Response(body, status=status, headers=headers)


def _field_errors(details) -> dict:
    errors = {}
    for line in details:
        match = FIELD_DETAIL.match(line)
        if match:
            errors.setdefault(match[1], []).append(match[2])
    return errors


def _drf_errors(detail, prefix="") -> dict:
    if isinstance(detail, dict):
        errors = {}
        for key, value in detail.items():
            for name, messages in _drf_errors(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}").items():
                errors.setdefault(name, []).extend(messages)
        return errors
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        errors = {}
        for i, item in enumerate(detail):
            for name, messages in _drf_errors(item, f"{prefix}[{i}]").items():
                errors.setdefault(name, []).extend(messages)
        return errors
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


def merge_exception_handler(exc, context):
    """The one place where errors become Merge-style HTTP answers."""
    exc = store_outage(exc) or exc
    if isinstance(exc, UpstreamAnswerUnusable):
        # The call was delivered: a 5xx would make the SDK send it again (merge.md §3), so a final 400.
        return merge_error(400, f"The request was delivered upstream, but its answer could not be used: {exc.message}")
    if isinstance(exc, PlatformError):
        detail = " ".join([exc.message, *[line for line in exc.details if line != exc.message]])
        return merge_error(exc.status, detail, _field_errors(exc.details), exc.retry_after)
    if isinstance(exc, Http404):
        return merge_error(404, "Not found.")
    if isinstance(exc, drf.ValidationError):
        errors = _drf_errors(exc.detail)
        lines = [f"{name}: {' '.join(messages)}" for name, messages in errors.items()]
        return merge_error(400, " ".join(["Invalid input.", *lines]), errors)
    if isinstance(exc, drf.APIException):
        return merge_error(exc.status_code, str(exc.detail), retry_after=getattr(exc, "wait", None))
    log.exception("Unhandled error in the Merge dialect.", exc_info=exc)
    return merge_error(500, "Internal server error.")


# --- Base view -----------------------------------------------------------------------------------------------------

ACCOUNT_TOKEN = OpenApiParameter("X-Account-Token", location=OpenApiParameter.HEADER, required=True,
                                 description="The account token of one of your connections.")
CATEGORY = OpenApiParameter("category", location=OpenApiParameter.PATH, enum=CATEGORIES,
                            description="Every category behaves the same: connections are not bound to one.")
ACCOUNT_ERRORS = {401: OpenApiResponse(ERROR, description="Invalid API key or account token.")}


class MergeView(APIView):
    """API-key authentication (as the native API) with Merge-style errors."""

    def get_exception_handler(self):
        return merge_exception_handler


def account_connection(request) -> Connection:
    """The caller's connection named by `X-Account-Token`: missing, unknown or another tenant's → 401."""
    token = account_token(request)
    if not token:
        raise NotAuthenticated("The X-Account-Token header is required.")
    return connection_by_account_token(request.user.organization, token)


# --- Pagination ----------------------------------------------------------------------------------------------------

class MergeCursorPagination(CursorPagination):
    """`{next, previous, results}` where next/previous are bare cursor tokens (the SDK passes them back as `cursor`).

    Querysets are paged by position (DRF's cursor: stable under inserts); lists (computed rows) by offset.
    """

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("created_at", "id")
    list_links = None

    def paginate_queryset(self, queryset, request, view=None):
        if not isinstance(queryset, list):
            return super().paginate_queryset(queryset, request, view)
        size = self.get_page_size(request)
        cursor = self.decode_cursor(request)
        start = cursor.offset if cursor else 0
        end = start + size
        self.list_links = (self.encode_cursor(Cursor(end, False, None)) if end < len(queryset) else None,
                           self.encode_cursor(Cursor(max(0, start - size), False, None)) if start > 0 else None)
        return queryset[start:end]

    def get_next_link(self):
        return self.list_links[0] if self.list_links else super().get_next_link()

    def get_previous_link(self):
        return self.list_links[1] if self.list_links else super().get_previous_link()

    def encode_cursor(self, cursor) -> str:
        tokens = {"o": str(cursor.offset)}  # even 0: a token is never the empty string
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        return b64encode(urlencode(tokens).encode()).decode()

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            tokens = parse_qs(b64decode(encoded, validate=True).decode("ascii"), keep_blank_values=True,
                              strict_parsing=True)
            if set(tokens) - {"o", "r", "p"} or any(len(values) > 1 for values in tokens.values()):
                raise ValueError
            offset = int(tokens.get("o", ["0"])[0])
            reverse = {"0": False, "1": True}[tokens.get("r", ["0"])[0]]
            position = tokens.get("p", [None])[0]
            if not 0 <= offset <= self.offset_cutoff or (position is not None and parse_datetime(position) is None):
                raise ValueError
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError):
            raise InvalidInput("Invalid input.", ["cursor: Invalid cursor."]) from None
        return Cursor(offset=offset, reverse=reverse, position=position)

    def get_paginated_response_schema(self, schema):
        token = {"type": "string", "nullable": True, "description": "A cursor token to pass back as `cursor`."}
        return {"type": "object", "required": ["next", "previous", "results"],
                "properties": {"next": token, "previous": token, "results": schema}}


# --- Selectors -----------------------------------------------------------------------------------------------------

def _ids(values) -> list[int]:
    return [pk for pk in (safe_id(v.strip()) for v in values) if pk is not None]


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def linked_accounts(organization, filters: dict):
    """The organization's connections matching the linked-accounts filters."""
    connections = Connection.objects.filter(organization=organization).select_related("integration")
    filters = {name: value for name, value in filters.items() if value}
    if "id" in filters:
        connections = connections.filter(pk__in=_ids([filters["id"]]))
    if "ids" in filters:
        connections = connections.filter(pk__in=_ids(filters["ids"].split(",")))
    if "end_user_origin_id" in filters:
        connections = connections.filter(end_user_id=filters["end_user_origin_id"])
    if "end_user_origin_ids" in filters:
        connections = connections.filter(end_user_id__in=_list(filters["end_user_origin_ids"]))
    if "integration_name" in filters:
        name = filters["integration_name"]
        connections = connections.filter(Q(integration__name__iexact=name) | Q(integration__slug__iexact=name))
    if "status" in filters:
        connections = connections.filter(status__in=[ours for ours, theirs in ACCOUNT_STATUSES.items()
                                                     if theirs == filters["status"]])
    return connections


def sync_statuses(connection, category: str) -> list[dict]:
    """One SyncStatus per model the connection syncs (merge.md §8), `model_id` under the URL's category."""
    return syncing_services.sync_status_for(connection, category)


def sync_resync(connection, category: str) -> list[dict]:
    """Ask for a sync of every enabled model of the connection now; returns their statuses (merge.md §8)."""
    return syncing_services.resync(connection, category)


# --- Views ---------------------------------------------------------------------------------------------------------

@hot_cache.checked_at_permit
class PassthroughView(MergeView):
    """Call any path of the connected account's API; HTTP 200 with the upstream status inside."""

    @extend_schema(operation_id="merge_passthrough_create", request=PassthroughRequest,
                   responses={200: RemoteResponse, 400: ERROR, **ACCOUNT_ERRORS, 408: ERROR, 502: ERROR},
                   parameters=[CATEGORY, ACCOUNT_TOKEN], tags=["merge"])
    def post(self, request, category):
        connection = account_connection(request)
        envelope = envelopes.parse(request.data, data_must_be_string=True)
        try:
            response = services.passthrough_execute_retrying(connection=connection, method=envelope.method,
                                                             target=envelope.target(connection.integration),
                                                             headers=envelope.headers, body=envelope.body,
                                                             dialect=FunctionCall.DIALECT_MERGE,
                                                             retries=requested_retries(request))
        except UpstreamTimeout:
            raise UpstreamTimeout(
                f"The upstream did not answer within {settings.SYNC_PASSTHROUGH_TIMEOUT:g} seconds; use async "
                f"passthrough: POST /merge/api/{category}/v1/async-passthrough") from None
        return Response(remote_response(envelope.method, envelope.path, response,
                                        normalize=envelope.normalize_response))


class AccountDetailsView(MergeView):
    """The connection named by the account token; answers whatever its status."""

    @extend_schema(operation_id="merge_account_details_retrieve",
                   responses={200: MergeAccountDetailsSerializer, **ACCOUNT_ERRORS},
                   parameters=[CATEGORY, ACCOUNT_TOKEN], tags=["merge"])
    def get(self, request, category):
        connection = account_connection(request)
        return Response(MergeAccountDetailsSerializer(connection, context={"category": category}).data)


class LinkedAccountsView(MergeView, ListAPIView):
    """The organization's connections (all of them, whatever the category of the URL)."""

    serializer_class = MergeLinkedAccountSerializer
    pagination_class = MergeCursorPagination

    def get_queryset(self):
        filters = MergeLinkedAccountsQuerySerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return linked_accounts(self.request.user.organization, filters.validated_data)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "category": self.kwargs["category"]}

    @extend_schema(operation_id="merge_linked_accounts_list", parameters=[CATEGORY, MergeLinkedAccountsQuerySerializer],
                   responses={200: MergeLinkedAccountSerializer(many=True), 400: ERROR, 401: ERROR}, tags=["merge"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class LinkTokenView(MergeView):
    """A connect session in Merge's shape (connect.md §1): `magic_link_url` is the hosted page."""

    @extend_schema(operation_id="merge_link_token_create", request=LinkTokenRequest, parameters=[CATEGORY],
                   responses={200: LinkToken, 400: ERROR, 401: ERROR}, tags=["merge"])
    def post(self, request, category):
        payload = LinkTokenRequest(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        session, token = connect.session_create(
            request.user.organization, end_user_id=data["end_user_origin_id"],
            end_user_email=data["end_user_email_address"], end_user_organization_name=data["end_user_organization_name"],
            integrations=[data["integration"]] if data["integration"] else None, categories=data["categories"],
            expires_in_minutes=data["link_expiry_mins"])
        offered = list(session.integrations.all()[:2])
        return Response({"link_token": token, "integration_name": offered[0].name if len(offered) == 1 else None,
                         "magic_link_url": connect_url(request, token)})


class AccountTokenView(MergeView):
    """Exchange a connect flow's public token for the account token (valid 1 h, repeatable; merge.md §6)."""

    @extend_schema(operation_id="merge_account_token_retrieve", parameters=[CATEGORY],
                   responses={200: AccountToken, 401: ERROR, 404: ERROR}, tags=["merge"])
    def get(self, request, category, public_token):
        connection = connect.public_token_exchange(request.user.organization, public_token).connection
        integration = connection.integration
        return Response({"account_token": connection.account_token(), "id": str(connection.pk),
                         "integration": {"name": integration.name, "slug": integration.slug,
                                         "categories": integration.categories}})


class DeleteAccountView(MergeView):
    """Delete the connection and its credentials: its account token stops working at once."""

    @extend_schema(operation_id="merge_delete_account_create", request=None,
                   responses={200: EMPTY, **ACCOUNT_ERRORS},
                   parameters=[CATEGORY, ACCOUNT_TOKEN], tags=["merge"])
    def post(self, request, category):
        connection_delete(account_connection(request))
        return Response({})


class SyncStatusView(MergeView, ListAPIView):
    """One status per model the connection syncs."""

    serializer_class = MergeSyncStatusSerializer
    pagination_class = MergeCursorPagination

    def get_queryset(self):
        return sync_statuses(account_connection(self.request), self.kwargs["category"])

    @extend_schema(operation_id="merge_sync_status_list", parameters=[CATEGORY, ACCOUNT_TOKEN],
                   responses={200: MergeSyncStatusSerializer(many=True), 400: ERROR, **ACCOUNT_ERRORS}, tags=["merge"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ResyncView(MergeView):
    """Start a sync of every model now: a JSON array of statuses, not a page."""

    @extend_schema(operation_id="merge_sync_status_resync_create", request=None,
                   responses={200: MergeSyncStatusSerializer(many=True), **ACCOUNT_ERRORS},
                   parameters=[CATEGORY, ACCOUNT_TOKEN], tags=["merge"])
    def post(self, request, category):
        return Response(MergeSyncStatusSerializer(sync_resync(account_connection(request), category), many=True).data)


class AsyncPassthroughView(MergeView):
    """Queue a passthrough call: 200 with a receipt at once (merge.md §5)."""

    @extend_schema(operation_id="merge_async_passthrough_create", request=PassthroughRequest,
                   responses={200: AsyncReceipt, 400: ERROR, **ACCOUNT_ERRORS}, parameters=[CATEGORY, ACCOUNT_TOKEN],
                   tags=["merge"])
    def post(self, request, category):
        connection = account_connection(request)
        envelope = envelopes.parse(request.data, data_must_be_string=True)
        receipt = async_passthrough.async_passthrough_create(connection=connection, envelope=envelope,
                                                             dialect=FunctionCall.DIALECT_MERGE,
                                                             extra_secrets=caller_secrets(request))
        return Response({"async_passthrough_receipt_id": str(receipt.pk)})


class AsyncPassthroughResultView(MergeView):
    """202 `"PENDING"`, 200 with the passthrough answer, 500 failed, 404 unknown/expired/another connection's."""

    @extend_schema(operation_id="merge_async_passthrough_retrieve",
                   responses={200: RemoteResponse, 202: OpenApiResponse(description='The JSON string "PENDING".'),
                              404: ERROR, 429: ERROR, 500: ERROR, **ACCOUNT_ERRORS},
                   parameters=[CATEGORY, ACCOUNT_TOKEN], tags=["merge"])
    def get(self, request, category, receipt_id):
        connection = account_connection(request)
        receipt = async_passthrough.async_passthrough_get(request.user.organization, receipt_id, connection=connection)
        async_passthrough.retrieval_allowed(receipt.pk)
        if receipt.status == receipt.DONE:
            return Response(receipt.result)
        if receipt.status == receipt.FAILED:
            return merge_error(500, receipt.error)
        return Response("PENDING", status=202)
