"""Merge-compatible dialect: see ../shared/spec/merge.md."""

urlpatterns = []
