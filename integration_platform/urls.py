from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from integration_platform.echo import echo
from connections.api.views import ConnectionViewSet, FunctionViewSet, IntegrationViewSet
from passthrough.api.views import FunctionCallViewSet

admin.site.site_header = "Integration Platform"
admin.site.site_title = "Integration Platform"
admin.site.index_title = "Operations"

router = SimpleRouter(trailing_slash="/?")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("functions", FunctionViewSet, basename="function")
router.register("connections", ConnectionViewSet, basename="connection")
router.register("function-calls", FunctionCallViewSet, basename="function-call")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include(router.urls)),
    re_path(r"^echo/(?P<path>.*)$", echo, name="echo"),
]

handler404 = "integration_platform.errors.json_not_found"
handler500 = "integration_platform.errors.json_server_error"
