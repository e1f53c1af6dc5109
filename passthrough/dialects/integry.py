"""Integry-compatible dialect: see ../shared/spec/integry.md."""

urlpatterns = []
