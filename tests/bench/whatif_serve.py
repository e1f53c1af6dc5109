"""`manage.py serve` with what-if patches: experiments that estimate what a fix would gain, for the lead.

The application code is NOT changed: the patches are applied in this process before gunicorn forks its workers,
and only for the benchmark variant that asks for them (BENCH_WHATIF, comma-separated):

- touch60: `Connection.touch()` writes `last_used_at` only if it is older than 60 s (as `api_key_from_secret`
  already does for API keys), instead of an UPDATE of the same row on every call.
- asynclog: the function-call log INSERT commits with `SET LOCAL synchronous_commit TO OFF` (no wait for the WAL
  flush; a crash of the machine could lose the last fraction of a second of log rows, never corrupt anything).

    BENCH_WHATIF=touch60,asynclog python -m tests.bench.whatif_serve --bind 127.0.0.1:PORT
"""

import os
import sys
from datetime import timedelta


def apply(patches: set[str]) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    if "touch60" in patches:
        from connections.models import Connection

        original_touch = Connection.touch

        def touch(self):
            last = getattr(self, "last_used_at", None)
            if last is not None and timezone.now() - last < timedelta(seconds=60):
                return
            original_touch(self)

        Connection.touch = touch

    if "asynclog" in patches:
        from passthrough import services

        original_record = services.function_call_record

        def function_call_record(*args, **kwargs):
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit TO OFF")
                return original_record(*args, **kwargs)

        services.function_call_record = function_call_record


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
    import django

    django.setup()
    patches = {p.strip() for p in os.environ.get("BENCH_WHATIF", "").split(",") if p.strip()}
    unknown = patches - {"touch60", "asynclog"}
    if unknown:
        raise SystemExit(f"unknown what-if patches: {sorted(unknown)}")
    apply(patches)
    from django.core.management import call_command

    call_command("serve", *sys.argv[1:])


if __name__ == "__main__":
    main()
