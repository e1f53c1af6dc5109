from django.contrib.auth.views import LoginView
from django.http import JsonResponse
from django.urls import include, path
from oauth2_provider.views import ProtectedResourceView


class Me(ProtectedResourceView):
    """The provider's API: who the bearer token belongs to."""

    def get(self, request):
        return JsonResponse({"username": request.resource_owner.username})


urlpatterns = [
    path("accounts/login/", LoginView.as_view(template_name="login.html"), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/me", Me.as_view()),
]
