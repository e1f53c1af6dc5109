from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from connections import connect, services, webhooks
from connections.api.serializers import (
    ConnectSessionCreatedSerializer,
    ConnectSessionCreateSerializer,
    ConnectionCreatedSerializer,
    ConnectionCreateSerializer,
    ConnectionSerializer,
    FunctionSerializer,
    IntegrationSerializer,
    PublicTokenExchangeSerializer,
    WebhookSecretSerializer,
    WebhookSettingsSerializer,
)
from connections.connect_views import connect_url
from connections.models import Connection, Function, Integration
from integration_platform.errors import InvalidInput


class IntegrationViewSet(viewsets.ReadOnlyModelViewSet):
    """The catalog: every enabled integration."""

    serializer_class = IntegrationSerializer
    lookup_field = "slug"
    queryset = Integration.objects.filter(enabled=True)
    pagination_class = None


FUNCTION_TYPES = tuple(kind for kind, _ in Function.TYPES)


class FunctionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Enabled functions of enabled integrations: each one's `<slug>-passthrough-request` and its typed functions."""

    serializer_class = FunctionSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=[
        OpenApiParameter("type", description="passthrough, query or action (any case)."),
        OpenApiParameter("integration", description="Integration slug."),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        functions = Function.objects.callable().select_related("integration")
        if self.action != "list":
            return functions
        kind = self.request.query_params.get("type")
        if kind is not None:
            if kind.lower() not in FUNCTION_TYPES:
                raise InvalidInput("Invalid input.", ["type: Must be passthrough, action or query."])
            functions = functions.filter(type=kind.lower())
        if integration := self.request.query_params.get("integration"):
            # A NUL names nothing (and PostgreSQL refuses it in a query).
            functions = functions.filter(integration__slug=integration) if "\x00" not in integration else functions.none()
        return functions

    def paginate_queryset(self, queryset):
        self.paginator.ordering = ("name",)
        return super().paginate_queryset(queryset)


class ConnectionViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Connected accounts of the caller's organization. Credentials go in, never come out."""

    serializer_class = ConnectionSerializer
    queryset = Connection.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self):
        connections = Connection.objects.filter(organization=self.request.user.organization).select_related("integration")
        params = self.request.query_params
        if integration := params.get("integration"):
            connections = connections.filter(integration__slug=integration)
        if end_user_id := params.get("end_user_id"):
            connections = connections.filter(end_user_id=end_user_id)
        if state := params.get("status"):
            connections = connections.filter(status=state)
        return connections

    @extend_schema(request=ConnectionCreateSerializer, responses={201: ConnectionCreatedSerializer})
    def create(self, request, *args, **kwargs):
        payload = ConnectionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        connection, token = services.connection_create(
            organization=request.user.organization,
            integration_slug=data["integration"],
            end_user_id=data["end_user_id"],
            credentials=data["credentials"],
            label=data["label"],
            end_user_email=data["end_user_email"],
            end_user_organization_name=data["end_user_organization_name"],
        )
        connection.account_token = token
        return Response(ConnectionCreatedSerializer(connection).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.connection_delete(instance)


class WebhookSettingsView(APIView):
    """The caller's organization's webhook: where events go, and which (spec/webhooks.md)."""

    @extend_schema(responses={200: WebhookSettingsSerializer})
    def get(self, request):
        return Response(webhooks.webhook_settings(request.user.organization))

    @extend_schema(request=WebhookSettingsSerializer, responses={200: WebhookSettingsSerializer})
    def put(self, request):
        payload = WebhookSettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response(webhooks.webhook_settings_update(request.user.organization, url=payload.validated_data["url"],
                                                         events=payload.validated_data["events"]))


class WebhookSecretView(APIView):
    """Rotate the webhook signing secret: the new one is shown once; the previous one keeps signing for 24 h."""

    @extend_schema(request=None, responses={201: WebhookSecretSerializer})
    def post(self, request):
        secret = webhooks.webhook_secret_rotate(request.user.organization)
        return Response({"secret": secret}, status=status.HTTP_201_CREATED)


class ConnectSessionView(APIView):
    """Open a connect session: the hosted page where an end user links an account (connect.md §1)."""

    @extend_schema(request=ConnectSessionCreateSerializer, responses={201: ConnectSessionCreatedSerializer})
    def post(self, request):
        payload = ConnectSessionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        session, token = connect.session_create(request.user.organization, **payload.validated_data)
        return Response({"token": token, "connect_url": connect_url(request, token),
                         "expires_at": session.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}, status=status.HTTP_201_CREATED)


class PublicTokenView(APIView):
    """Exchange the public token the connect flow handed the end user's browser for the account token (1 h, repeatable)."""

    @extend_schema(responses={200: PublicTokenExchangeSerializer})
    def get(self, request, public_token):
        connection = connect.public_token_exchange(request.user.organization, public_token).connection
        return Response({"account_token": connection.account_token(), "connection_id": connection.pk,
                         "integration": connection.integration.slug, "end_user_id": connection.end_user_id})
