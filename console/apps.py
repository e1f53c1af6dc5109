from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator console: the dashboard over every app (top layer: nothing imports it)."""

    name = "console"
