from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from integration_platform.echo import echo
from connections.api.views import (
    ConnectionViewSet,
    ConnectSessionView,
    FunctionViewSet,
    IntegrationViewSet,
    PublicTokenView,
)
from passthrough.api.passthrough_views import (
    AsyncPassthroughResultView,
    AsyncPassthroughView,
    FunctionView,
    PassthroughView,
)
from passthrough.api.views import FunctionCallViewSet

admin.site.site_header = "Integration Platform"
admin.site.site_title = "Integration Platform"
admin.site.index_title = "Operations"

router = SimpleRouter()
# SimpleRouter's constructor only knows "/" or ""; the optional slash must be set on the instance.
router.trailing_slash = "/?"
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("functions", FunctionViewSet, basename="function")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("function-calls", FunctionCallViewSet, basename="function-call")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/v1/passthrough/?$", PassthroughView.as_view(), name="passthrough"),
    re_path(r"^api/v1/async-passthrough/?$", AsyncPassthroughView.as_view(), name="async-passthrough"),
    re_path(r"^api/v1/async-passthrough/(?P<receipt_id>[^/]+)/?$", AsyncPassthroughResultView.as_view(),
            name="async-passthrough-result"),
    re_path(r"^api/v1/functions/(?P<name>[^/]+)/?$", FunctionView.as_view(), name="function"),
    re_path(r"^api/v1/(?P<name>[a-z0-9][a-z0-9-]*-passthrough-request)/?$", FunctionView.as_view(), name="function-by-app"),
    re_path(r"^api/v1/connect/sessions/?$", ConnectSessionView.as_view(), name="connect-sessions"),
    re_path(r"^api/v1/connect/public-tokens/(?P<public_token>[^/]+)/?$", PublicTokenView.as_view(),
            name="connect-public-token"),
    path("connect/", include("connections.connect_urls")),
    path("api/v1/", include("syncing.api.urls")),
    path("api/v1/", include(router.urls)),
    path("merge/api/", include("passthrough.dialects.merge")),
    path("unified/", include("passthrough.dialects.unified")),
    re_path(r"^integry(?:/+|$)", include("passthrough.dialects.integry")),
    re_path(r"^echo/(?P<path>.*)$", echo, name="echo"),
]

handler404 = "integration_platform.errors.json_not_found"
handler500 = "integration_platform.errors.json_server_error"
