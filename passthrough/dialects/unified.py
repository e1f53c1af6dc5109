"""Unified-compatible dialect: see ../shared/spec/unified.md."""

urlpatterns = []
