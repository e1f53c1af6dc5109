"""One settings module, read from the environment with django-environ.

Every value has a safe default for local use (`make run`); production sets
PLATFORM_ENV=production and must then provide SECRET_KEY and PLATFORM_ENCRYPTION_KEYS.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

PLATFORM_ENV = env.str("PLATFORM_ENV", default="local")
LOCAL_SECRETS_FILE = Path(env.str("LOCAL_SECRETS_FILE", default=str(VAR_DIR / "local-secrets.env")))
if PLATFORM_ENV != "production" and LOCAL_SECRETS_FILE.exists():
    environ.Env.read_env(LOCAL_SECRETS_FILE)


def _secret(name, make):
    """A secret from the environment or, in local mode only, generated once into a git-ignored file."""
    value = env.str(name, default="")
    if value:
        return value
    if PLATFORM_ENV == "production":
        raise ImproperlyConfigured(f"{name} must be set when PLATFORM_ENV=production.")
    value = make()
    LOCAL_SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCAL_SECRETS_FILE.open("a") as f:
        f.write(f"{name}={value}\n")
    LOCAL_SECRETS_FILE.chmod(0o600)
    return value


SECRET_KEY = _secret("SECRET_KEY", lambda: secrets.token_urlsafe(50))
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation: prepend a new key, run rotate_encryption_keys).
PLATFORM_ENCRYPTION_KEYS = _secret("PLATFORM_ENCRYPTION_KEYS", lambda: Fernet.generate_key().decode()).split(",")

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "console",  # first: its admin/index.html (the dashboard link) overrides the admin's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_dramatiq",
    "axes",
    "connections",
    "passthrough",
    "syncing",
    "functions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "integration_platform.middleware.RefuseNulBytes",
    "integration_platform.middleware.LimitRequestBody",
    "connections.hot_cache.LookupsCheckedAtPermit",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Vendor SDKs follow redirects and turn a redirected POST into a GET: never redirect to add a slash.
APPEND_SLASH = False

ROOT_URLCONF = "integration_platform.urls"
WSGI_APPLICATION = "integration_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the web workers and the in-process job worker share one file.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run a real job worker and live servers in threads: a file (WAL, busy timeout) rather than Django's
    # shared-cache in-memory database, whose table locks fail at once instead of waiting.
    # Per process, so concurrent runs on one machine don't share it; the test runner deletes it at the end.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_ROOT_DIR = VAR_DIR / "static"
STATIC_ROOT_DIR.mkdir(parents=True, exist_ok=True)

# The cache also holds the shared rate-limit counters, so the default must be shared across processes.
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://platform_cache")}

DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default="")
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.redis.RedisBroker" if DRAMATIQ_BROKER_URL else "dramatiq.brokers.stub.StubBroker",
    "OPTIONS": {"url": DRAMATIQ_BROKER_URL} if DRAMATIQ_BROKER_URL else {},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]
# `rundramatiq` workers poll an idle Redis queue at most this many ms apart (Dramatiq's default, 1000, made a lone
# async request after a quiet spell wait ~0.4 s p50). Dramatiq reads it from its own environment variable at import, so
# it is exported here, before `rundramatiq` execs the workers; an explicit `dramatiq_worker_timeout` still wins.
DRAMATIQ_WORKER_TIMEOUT_MS = env.int("DRAMATIQ_WORKER_TIMEOUT_MS", default=50)
os.environ.setdefault("dramatiq_worker_timeout", str(DRAMATIQ_WORKER_TIMEOUT_MS))
# In local mode `serve` runs a job worker inside each web process (no external broker to share).
IN_PROCESS_WORKER = not DRAMATIQ_BROKER_URL

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = STATIC_ROOT_DIR
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["connections.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "integration_platform.errors.native_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "integration_platform.pagination.NativeCursorPagination",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Integration Platform API",
    "DESCRIPTION": "Connected accounts, passthrough and syncing for third-party APIs, self-hosted.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "integration_platform.openapi.document_error_responses",
                             "integration_platform.openapi.document_integry_routes"],
}

# Function-call log
FUNCTION_CALL_BODY_LIMIT = env.int("FUNCTION_CALL_BODY_LIMIT", default=64 * 1024)
# Sync calls' log rows: "batched" (written by a per-process writer off the request path, passthrough/call_log.py) or
# "sync" (committed before the call answers).
FUNCTION_CALL_LOG_MODE = env.str("FUNCTION_CALL_LOG_MODE", default="batched")
if FUNCTION_CALL_LOG_MODE not in ("batched", "sync"):
    raise ImproperlyConfigured("FUNCTION_CALL_LOG_MODE must be 'batched' or 'sync'.")
FUNCTION_CALL_LOG_FLUSH_SECONDS = env.float("FUNCTION_CALL_LOG_FLUSH_SECONDS", default=0.2)
FUNCTION_CALL_LOG_BATCH_ROWS = env.int("FUNCTION_CALL_LOG_BATCH_ROWS", default=500)
FUNCTION_CALL_RETENTION_DAYS = env.int("FUNCTION_CALL_RETENTION_DAYS", default=30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # APScheduler announces every job it adds at INFO; its warnings and errors still show.
    "loggers": {"apscheduler": {"level": "WARNING"}},
}

# `manage.py serve`
SERVE_WORKERS = env.int("SERVE_WORKERS", default=2)
SERVE_THREADS = env.int("SERVE_THREADS", default=8)
SERVE_ACCESS_LOG = env.bool("SERVE_ACCESS_LOG", default=True)

# Outbound client
OUTBOUND_CONNECT_TIMEOUT = env.float("OUTBOUND_CONNECT_TIMEOUT", default=10.0)
OUTBOUND_MAX_RESPONSE_BYTES = env.int("OUTBOUND_MAX_RESPONSE_BYTES", default=50 * 1024 * 1024)
SYNC_PASSTHROUGH_TIMEOUT = env.float("SYNC_PASSTHROUGH_TIMEOUT", default=55.0)
# First backoff of a sync call's retries (only when the caller asks, X-Passthrough-Retries); doubles each attempt.
PASSTHROUGH_RETRY_BASE_SECONDS = env.float("PASSTHROUGH_RETRY_BASE_SECONDS", default=1.0)
# Let user-chosen override hosts reach private/loopback networks (link-local and metadata addresses: never).
PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = env.bool("PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES", default=False)
OAUTH_REFRESH_MARGIN_SECONDS = env.int("OAUTH_REFRESH_MARGIN_SECONDS", default=60)
# Connect flow: origins every organization may redirect end users to (beside each organization's own list), and the
# public URL of this server (OAuth2 redirect URI, connect links); empty: taken from each request.
CONNECT_ALLOWED_REDIRECT_ORIGINS = env.str("CONNECT_ALLOWED_REDIRECT_ORIGINS", default="")
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")
CSRF_FAILURE_VIEW = "connections.connect_views.csrf_failure"
# Request bodies for passthrough may be large; refused above this with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=20 * 1024 * 1024)

# Async passthrough
ASYNC_PASSTHROUGH_OUTBOUND_TIMEOUT = env.float("ASYNC_PASSTHROUGH_OUTBOUND_TIMEOUT", default=10.0)
ASYNC_PASSTHROUGH_DEADLINE_SECONDS = env.int("ASYNC_PASSTHROUGH_DEADLINE_SECONDS", default=300)
ASYNC_PASSTHROUGH_RETENTION_HOURS = env.int("ASYNC_PASSTHROUGH_RETENTION_HOURS", default=24)
ASYNC_RESULT_POLL_INTERVAL_SECONDS = env.int("ASYNC_RESULT_POLL_INTERVAL_SECONDS", default=10)
# A running job with no sign of life for this long is treated as lost (its worker died).
ASYNC_PASSTHROUGH_LOST_AFTER_SECONDS = env.int("ASYNC_PASSTHROUGH_LOST_AFTER_SECONDS", default=60)
# A pending job never picked up for this long is enqueued again (the broker was down or lost the message).
ASYNC_PASSTHROUGH_REQUEUE_AFTER_SECONDS = env.int("ASYNC_PASSTHROUGH_REQUEUE_AFTER_SECONDS", default=30)
# Retries of a network error, 429 or 5xx (passthrough/retries.py): after 1 min, then 2 min..., with jitter, at most
# this many attempts in all, and none that would start after the global deadline (3 fit in the default 300 s).
ASYNC_PASSTHROUGH_MAX_ATTEMPTS = env.int("ASYNC_PASSTHROUGH_MAX_ATTEMPTS", default=3)
ASYNC_PASSTHROUGH_RETRY_BASE_SECONDS = env.float("ASYNC_PASSTHROUGH_RETRY_BASE_SECONDS", default=60.0)

# Outbound webhooks
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
# Webhook URLs are tenant-chosen: public addresses only unless the operator allows private networks.
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)

# Outbound rate limits (catalog `rate_limits`; contract in spec/limits.md). The sliding logs and pauses live in Redis
# when CACHE_URL is redis://, shared by every process; otherwise in the database (connections.RateLimitSend).
_CACHE_URL = env.str("CACHE_URL", default="")
RATE_LIMIT_REDIS_URL = _CACHE_URL if _CACHE_URL.startswith(("redis://", "rediss://")) else ""
# With a Redis CACHE_URL: API keys and connections kept in each process, invalidated through Redis (connections/hot_cache.py).
HOT_PATH_CACHE = env.bool("HOT_PATH_CACHE", default=True)
# How long a sync call may wait for a permit before answering 429 (capped at the integration's shortest window).
RATE_LIMIT_INTERACTIVE_MAX_WAIT = env.float("RATE_LIMIT_INTERACTIVE_MAX_WAIT", default=1.0)
# Share of every window kept for interactive calls: background work (async passthrough, syncing) never uses it.
RATE_LIMIT_BACKGROUND_RESERVE = env.float("RATE_LIMIT_BACKGROUND_RESERVE", default=0.2)
# How long a worker sleeps for a permit before handing the job back with a delay (PermitDelayed). Kept well under
# ASYNC_PASSTHROUGH_LOST_AFTER_SECONDS, or the sweeper would take a sleeping job for a lost one.
RATE_LIMIT_BACKGROUND_MAX_WAIT = env.float("RATE_LIMIT_BACKGROUND_MAX_WAIT", default=30.0)
# Two requests sent a window apart may arrive closer together (spec/limits.md): a send counts in its windows from
# when its answer came back, or from this long after its permit if the answer took longer. Costs the upstream's answer
# time per window, at most this (5 % of a 5 s window for an upstream slower than this).
RATE_LIMIT_SAFETY_MARGIN_SECONDS = env.float("RATE_LIMIT_SAFETY_MARGIN_SECONDS", default=0.25)
# Longest pause an upstream's Retry-After / X-RateLimit-Reset may impose: one bad header must not silence an
# integration for days.
RATE_LIMIT_MAX_PAUSE_SECONDS = env.float("RATE_LIMIT_MAX_PAUSE_SECONDS", default=3600.0)

# Syncing (issue #8): incremental pulls of catalog `sync_models` into stored records.
SYNC_REQUEST_TIMEOUT = env.float("SYNC_REQUEST_TIMEOUT", default=30.0)
# Retries of one page request (408, 429, 5xx, unreachable): the background backoff (1 min, 2 min, 4 min, with up
# to 25 % jitter; a longer Retry-After wins), capped. SYNC_LOST_AFTER_SECONDS must stay above the cap.
SYNC_MAX_RETRIES = env.int("SYNC_MAX_RETRIES", default=3)
SYNC_RETRY_BASE_SECONDS = env.float("SYNC_RETRY_BASE_SECONDS", default=60.0)
SYNC_RETRY_MAX_WAIT_SECONDS = env.float("SYNC_RETRY_MAX_WAIT_SECONDS", default=600.0)
# How long one page may wait for our own rate-limit permits before the run fails (to run again later).
SYNC_RATE_LIMIT_MAX_WAIT_SECONDS = env.float("SYNC_RATE_LIMIT_MAX_WAIT_SECONDS", default=300.0)
SYNC_MAX_PAGES = env.int("SYNC_MAX_PAGES", default=100000)
SYNC_MAX_SKIPPED_PAGES = env.int("SYNC_MAX_SKIPPED_PAGES", default=10)
# Store request/response bodies of sync traffic in the function-call log (off: method, URL, status, sizes only).
SYNC_LOG_BODIES = env.bool("SYNC_LOG_BODIES", default=False)
# A running sync that has not shown a sign of life for this long is lost (its worker died) and is taken over.
SYNC_LOST_AFTER_SECONDS = env.int("SYNC_LOST_AFTER_SECONDS", default=900)
# A requested sync whose job has not started for this long is enqueued again (the broker lost it).
SYNC_REQUEUE_AFTER_SECONDS = env.int("SYNC_REQUEUE_AFTER_SECONDS", default=600)
# After a failed run, the next scheduled one comes after this (or the model's frequency, if shorter).
SYNC_RETRY_FAILED_AFTER_SECONDS = env.int("SYNC_RETRY_FAILED_AFTER_SECONDS", default=900)
SYNC_RUN_TIME_LIMIT_SECONDS = env.int("SYNC_RUN_TIME_LIMIT_SECONDS", default=24 * 3600)

# Prometheus metrics at /metrics (console app). Off unless enabled; with a token, a scrape must send
# `Authorization: Bearer <METRICS_TOKEN>`. Several processes: set PROMETHEUS_MULTIPROC_DIR (see integration_platform/metrics.py).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Admin login throttling (django-axes): this many failed logins lock that username from that IP address for
# ADMIN_LOCKOUT_MINUTES. Behind a reverse proxy, set AXES_IPWARE_META_PRECEDENCE_ORDER (django-axes docs) so the
# client's address, not the proxy's, is counted.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# HTTPS in production (`manage.py check --deploy` passes with only the required variables set). Behind a proxy that
# terminates TLS and sends X-Forwarded-Proto, set SECURE_PROXY_SSL_HEADER_ENABLED=true; if the proxy redirects to
# HTTPS itself, SECURE_SSL_REDIRECT=false turns our redirect off.
PRODUCTION = PLATFORM_ENV == "production"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
if env.bool("SECURE_PROXY_SSL_HEADER_ENABLED", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Turning the redirect off is the operator's documented choice (their proxy redirects), not an oversight to warn about.
SILENCED_SYSTEM_CHECKS = [] if SECURE_SSL_REDIRECT else ["security.W008"]
