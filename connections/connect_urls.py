"""The hosted connect page: /connect/{token}, /connect/{token}/{slug}, /connect/oauth/callback."""

from django.urls import path

from connections import connect_views as views

urlpatterns = [
    path("oauth/callback", views.oauth_callback, name="connect-oauth-callback"),
    path("<str:token>", views.connect_page, name="connect-page"),
    path("<str:token>/<slug:slug>", views.connect_integration, name="connect-integration"),
]
