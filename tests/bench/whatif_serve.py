"""`manage.py serve` with what-if patches: experiments that estimate what a fix would gain, for the lead.

The application code is NOT changed: the patches are applied in this process before gunicorn forks its workers,
and only for the benchmark variant that asks for them (BENCH_WHATIF, comma-separated):

- asynclog: the function-call log INSERT commits with `SET LOCAL synchronous_commit TO OFF` (no wait for the WAL
  flush; a crash of the machine could lose the last fraction of a second of log rows, never corrupt anything).

    BENCH_WHATIF=asynclog python -m tests.bench.whatif_serve --bind 127.0.0.1:PORT
"""

import os
import sys


def apply(patches: set[str]) -> None:
    from django.db import connection, transaction

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
    unknown = patches - {"asynclog"}
    if unknown:
        raise SystemExit(f"unknown what-if patches: {sorted(unknown)}")
    apply(patches)
    from django.core.management import call_command

    call_command("serve", *sys.argv[1:])


if __name__ == "__main__":
    main()
