from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from connections.models import Connection
from integration_platform.errors import NotFound
from syncing import services
from syncing.api.serializers import (
    RecordPageSerializer,
    RecordQuerySerializer,
    RecordSerializer,
    SyncModelUpdateSerializer,
    SyncRequestSerializer,
    SyncStatusListSerializer,
    SyncStatusSerializer,
)
from syncing.selectors import records_page
from syncing.spec import sync_model_spec

MAX_PAGE_SIZE = 1000
TAGS = ["syncing"]


def caller_connection(request, connection_id) -> Connection:
    """The caller's connection; another organization's is indistinguishable from none (404)."""
    connection = (Connection.objects.filter(pk=connection_id, organization=request.user.organization)
                  .select_related("integration", "organization").first())
    if connection is None:
        raise NotFound("Not found.")
    return connection


class RecordListView(APIView):
    """Stored records of one model of a connection, oldest change first; `modified_after` for what changed since."""

    @extend_schema(parameters=[RecordQuerySerializer], responses={200: RecordPageSerializer}, tags=TAGS)
    def get(self, request, connection_id, model):
        connection = caller_connection(request, connection_id)
        if sync_model_spec(connection.integration, model) is None:
            raise NotFound(f"Unknown model {model!r}.")
        query = RecordQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = records_page(connection, model, modified_after=params.get("modified_after"),
                            include_deleted=params["include_deleted"], cursor=params.get("cursor"),
                            page_size=min(params["page_size"], MAX_PAGE_SIZE))
        url = request.build_absolute_uri()
        return Response({
            "next": replace_query_param(url, "cursor", page.next_cursor) if page.next_cursor else None,
            "previous": replace_query_param(url, "cursor", page.previous_cursor) if page.previous_cursor else None,
            "results": RecordSerializer(page.records, many=True).data,
        })


class SyncStatusView(APIView):
    """Per synced model of a connection: status, last and next run, counts."""

    @extend_schema(responses={200: SyncStatusListSerializer}, tags=TAGS)
    def get(self, request, connection_id):
        return Response({"results": services.sync_statuses(caller_connection(request, connection_id))})


class SyncView(APIView):
    """Ask for a sync now (every enabled model unless `models` names some); it runs in a worker."""

    @extend_schema(request=SyncRequestSerializer, responses={202: SyncStatusListSerializer}, tags=TAGS)
    def post(self, request, connection_id):
        connection = caller_connection(request, connection_id)
        body = SyncRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        statuses = services.sync_request(connection, body.validated_data.get("models"),
                                         full=body.validated_data["full"], trigger="api")
        return Response({"results": statuses}, status=status.HTTP_202_ACCEPTED)


class SyncModelView(APIView):
    """Switch syncing of one model of a connection on or off."""

    @extend_schema(request=SyncModelUpdateSerializer, responses={200: SyncStatusSerializer}, tags=TAGS)
    def patch(self, request, connection_id, model):
        connection = caller_connection(request, connection_id)
        body = SyncModelUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.model_enable(connection, model, body.validated_data["enabled"])
        return Response(next(s for s in services.sync_statuses(connection) if s["model"] == model))
