from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from console.views import dashboard_view, metrics_view
from django_dramatiq.models import Task
from integration_platform.echo import echo
from connections.api.views import (
    ConnectionViewSet,
    ConnectSessionView,
    FunctionViewSet,
    IntegrationViewSet,
    PublicTokenView,
    WebhookSecretView,
    WebhookSettingsView,
)
from passthrough.api.passthrough_views import (
    AsyncPassthroughResultView,
    AsyncPassthroughView,
    PassthroughView,
)
from functions.mcp import mcp_endpoint
from functions.views import FunctionView
from passthrough.api.views import FunctionCallViewSet

admin.site.site_header = "Integration Platform"
admin.site.site_title = "Integration Platform"
admin.site.index_title = "Operations"
admin.site.site_url = "/api/docs/"  # "View site": the API docs (the site root is an API, not a page)
admin.site.unregister(Task)  # django_dramatiq's task table stays empty here: our rows are the jobs' state

router = SimpleRouter()
# SimpleRouter's constructor only knows "/" or ""; the optional slash must be set on the instance.
router.trailing_slash = "/?"
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("functions", FunctionViewSet, basename="function")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("function-calls", FunctionCallViewSet, basename="function-call")

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="console-dashboard"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/v1/passthrough/?$", PassthroughView.as_view(), name="passthrough"),
    re_path(r"^api/v1/async-passthrough/?$", AsyncPassthroughView.as_view(), name="async-passthrough"),
    re_path(r"^api/v1/async-passthrough/(?P<receipt_id>[^/]+)/?$", AsyncPassthroughResultView.as_view(),
            name="async-passthrough-result"),
    re_path(r"^api/v1/functions/(?P<name>[^/]+)/?$", FunctionView.as_view(), name="function"),
    re_path(r"^api/v1/(?P<name>[a-z0-9][a-z0-9-]*-passthrough-request)/?$", FunctionView.as_view(), name="function-by-app"),
    re_path(r"^api/v1/webhook/?$", WebhookSettingsView.as_view(), name="webhook-settings"),
    re_path(r"^api/v1/webhook/secret/?$", WebhookSecretView.as_view(), name="webhook-secret"),
    re_path(r"^api/v1/connect/sessions/?$", ConnectSessionView.as_view(), name="connect-sessions"),
    re_path(r"^api/v1/connect/public-tokens/(?P<public_token>[^/]+)/?$", PublicTokenView.as_view(),
            name="connect-public-token"),
    path("connect/", include("connections.connect_urls")),
    path("api/v1/", include("syncing.api.urls")),
    path("api/v1/", include(router.urls)),
    path("merge/api/", include("passthrough.dialects.merge")),
    path("unified/", include("passthrough.dialects.unified")),
    re_path(r"^integry(?:/+|$)", include("functions.integry")),
    re_path(r"^echo/(?P<path>.*)$", echo, name="echo"),
    re_path(r"^mcp/?$", mcp_endpoint, name="mcp"),
]

handler404 = "integration_platform.errors.json_not_found"
handler500 = "integration_platform.errors.json_server_error"
