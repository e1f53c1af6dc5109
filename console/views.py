from django.contrib import admin
from django.template.response import TemplateResponse

from console.dashboard import dashboard


def dashboard_view(request):
    """The operator dashboard (staff only: wrapped in the admin site's login check in urls.py)."""
    context = {**admin.site.each_context(request), "title": "Dashboard", **dashboard()}
    return TemplateResponse(request, "console/dashboard.html", context)
