"""OpsConsole settings: everything comes from the environment, with local defaults.

Local (DEBUG, the default) runs on SQLite and the machine's Redis with no
configuration at all. Production (DEBUG=false) refuses to start unless
SECRET_KEY and ALLOWED_HOSTS are set, and passes `manage.py check --deploy`.
"""

from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)


def required_in_production(name: str, default, cast=str):
    """Read `name`; outside DEBUG a missing value is a startup error naming it."""
    if name in env.ENVIRON:
        return env.get_value(name, cast=cast)
    if DEBUG:
        return default
    raise ImproperlyConfigured(f"Set the {name} environment variable (required when DEBUG=false).")


SECRET_KEY = required_in_production("SECRET_KEY", "local-dev-only-not-secret")
ALLOWED_HOSTS = required_in_production(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"], cast=list
)
# The audit log's HMAC key: from the environment only, never stored in the database.
# Rotation: give the new key a new AUDIT_KEY_ID and keep the old one in AUDIT_KEYS
# ("id=key,id=key") so that `audit verify` can still check the events it signed.
AUDIT_KEY = required_in_production("AUDIT_KEY", "local-dev-audit-key-not-secret")
if not DEBUG and len(AUDIT_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_KEY must be at least 32 characters.")
AUDIT_KEY_ID = env("AUDIT_KEY_ID", default="1")
AUDIT_KEYS = {
    key_id: key
    for key_id, _, key in (item.partition("=") for item in env.list("AUDIT_KEYS", default=[]))
}
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "django_celery_beat",
    "axes",
    "ninja",  # the API's docs page: Swagger UI from ninja's own static files, no CDN
    "opsconsole",
    "opsconsole.accounts",
    "mozilla_django_oidc",
    "opsconsole.tokens",
    "opsconsole.notifications",
    "jobs",
    "cachemgr",
    "partitions",
    "partitions.queries",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "opsconsole.accounts.oidc.RoleRefresh",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "opsconsole.middleware.SecurityHeadersMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsconsole.urls"
WSGI_APPLICATION = "opsconsole.wsgi.application"

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
                "opsconsole.context_processors.console",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write concurrently: take the write lock up front
    # instead of failing on a lock upgrade, and wait for it.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Local passwords (ModelBackend), refused when LOCAL_LOGIN_ENABLED=false.
    "opsconsole.accounts.oidc.LocalPasswordBackend",
    # Single sign-on (mozilla-django-oidc): answers only the provider's callback, and
    # only when OIDC_ISSUER is set.
    "opsconsole.accounts.oidc.ConsoleOIDCBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Single sign-on (OpenID Connect; docs/team.md) -----------------------------
# The issuer's discovery document gives the endpoints; set OIDC_OP_*_ENDPOINT only to
# override one. Empty OIDC_ISSUER: no SSO.
OIDC_ISSUER = env("OIDC_ISSUER", default="")
OIDC_RP_CLIENT_ID = env("OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env("OIDC_CLIENT_SECRET", default="")
OIDC_RP_SIGN_ALGO = env("OIDC_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env("OIDC_SCOPES", default="openid email profile groups")
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the logout's id_token_hint
OIDC_STORE_ACCESS_TOKEN = True  # the session refresh reads userinfo with it
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT_S", default=5.0)
OIDC_DISCOVERY_TTL_S = env.float("OIDC_DISCOVERY_TTL_S", default=3600.0)
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env.int("OIDC_ROLE_REFRESH_S", default=900)
OIDC_OP_LOGOUT_URL_METHOD = "opsconsole.accounts.oidc.provider_logout_url"
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", default="groups")
# group=role pairs: "ops-admins=admin,ops=operator,engineering=viewer"; the highest wins.
OIDC_GROUP_ROLES = {
    group.strip(): role.strip()
    for group, _, role in (item.partition("=") for item in env.list("OIDC_GROUP_ROLES", default=[]))
}
if bad := {r for r in OIDC_GROUP_ROLES.values() if r not in ("viewer", "operator", "admin")}:
    raise ImproperlyConfigured(f"OIDC_GROUP_ROLES: unknown role(s) {sorted(bad)}")
# Switch local passwords off once SSO works (the demo admin cannot log in then).
LOCAL_LOGIN_ENABLED = env.bool("LOCAL_LOGIN_ENABLED", default=True)
if not LOCAL_LOGIN_ENABLED and not OIDC_ISSUER:
    raise ImproperlyConfigured("LOCAL_LOGIN_ENABLED=false needs single sign-on (OIDC_ISSUER).")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Failed-login lockout: 5 failures for one username from one address lock it for 30 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Content-Security-Policy (django-csp 4): scripts only from our own static files
# (htmx is vendored), so no inline script or handler runs; inline style attributes
# stay allowed for progress bars and plan indentation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_REFERRER_POLICY = "same-origin"

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Production hardening; `check --deploy` is clean with DEBUG=false.
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)

# --- Services the console operates -----------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")


def _named_urls(name: str, default: str) -> dict[str, str]:
    """Parse `a=url1,b=url2` into {"a": "url1", "b": "url2"} (order kept)."""
    targets = {}
    for item in env.list(name, default=[default] if default else []):
        label, sep, url = item.partition("=")
        if not sep or not label.strip() or not url.strip():
            raise ImproperlyConfigured(f"{name}: expected name=url, got {item!r}")
        targets[label.strip()] = url.strip()
    return targets


CACHE_TARGETS = _named_urls("CACHE_TARGETS", "main=redis://127.0.0.1:6379/1")
WAREHOUSES = _named_urls("WAREHOUSES", "main=postgres://postgres@127.0.0.1:5432/opsconsole_demo")
# `?explain_role=ops_explain` on a PostgreSQL warehouse URL: EXPLAIN ANALYZE runs under
# SET LOCAL ROLE ops_explain (SELECT only; see the README). The warehouse layer reads it.
# Prefix for the console's own keys in the broker's Redis (locks, markers).
KEY_PREFIX = env("KEY_PREFIX", default="opsconsole:")
# Warmers (by name) that every worker runs once when it starts.
CACHE_WARM_ON_STARTUP = env.list("CACHE_WARM_ON_STARTUP", default=[])
# Each worker takes the first cache and slow-query snapshots when it starts.
SNAPSHOTS_ON_WORKER_START = env.bool("SNAPSHOTS_ON_WORKER_START", default=True)
# Partition migrations of tables larger than this need an admin.
PARTITIONS_ADMIN_ABOVE_BYTES = env.int("PARTITIONS_ADMIN_ABOVE_BYTES", default=1 << 30)
# Partition swaps: catch up outside the lock until this many captured writes are left,
# then wait at most PARTITIONS_LOCK_TIMEOUT_MS for the lock (retried); replay rounds.
PARTITIONS_LOCK_BACKLOG = env.int("PARTITIONS_LOCK_BACKLOG", default=200)
PARTITIONS_LOCK_TIMEOUT_MS = env.int("PARTITIONS_LOCK_TIMEOUT_MS", default=500)
PARTITIONS_REPLAY_BATCH = env.int("PARTITIONS_REPLAY_BATCH", default=5000)
# A catch-up whose backlog reaches no new low for this long fails (writes outrun replay).
PARTITIONS_CATCH_UP_STALL_S = env.float("PARTITIONS_CATCH_UP_STALL_S", default=600)
# Copy batches at once, each on its own connection (unset: min(CPU count, 4)).
PARTITIONS_COPY_WORKERS = env.int("PARTITIONS_COPY_WORKERS", default=0)
SLOW_QUERY_MS = env.int("SLOW_QUERY_MS", default=100)
# The index advisor also weighs statements that never finish (cancelled by a timeout,
# killed): a beat task samples pg_stat_activity this often for those running this long.
QUERIES_LONG_SAMPLE_S = env.float("QUERIES_LONG_SAMPLE_S", default=10.0)
QUERIES_LONG_RUNNING_MS = env.float("QUERIES_LONG_RUNNING_MS", default=1000.0)
# A range between two parameters (`ts >= $1 AND ts < $2`) is priced as keeping this share
# of the column's values, not the generic plan's 0.5 % guess (partitions/queries/windows.py).
QUERIES_ADVISOR_RANGE_WINDOW = env.float("QUERIES_ADVISOR_RANGE_WINDOW", default=0.05)
# /metrics: with a token, scrapers send "Authorization: Bearer <token>". Without one,
# only these peer addresses may scrape, and only when no proxy is in front (a request
# with X-Forwarded-For & co. needs the token): behind a reverse proxy on the same host
# every client would otherwise look like 127.0.0.1. Production lists none by default.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"] if DEBUG else [])
# The JSON API (/api/): requests per token and minute (counted in Redis); 429 beyond.
API_RATE_PER_MINUTE = env.int("API_RATE_PER_MINUTE", default=120)
# Notifications (docs/team.md): the channels' secrets are encrypted with this key, kept
# out of the database (SECRET_KEY when unset: set it to rotate SECRET_KEY on its own);
# links in messages point at CONSOLE_URL.
NOTIFICATIONS_KEY = env("NOTIFICATIONS_KEY", default=SECRET_KEY)
CONSOLE_URL = env("CONSOLE_URL", default="http://127.0.0.1:8000")
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=5)
NOTIFY_RETRY_BACKOFF_S = env.float("NOTIFY_RETRY_BACKOFF_S", default=30.0)
NOTIFY_RETRY_BACKOFF_MAX_S = env.float("NOTIFY_RETRY_BACKOFF_MAX_S", default=1800.0)
NOTIFY_READINESS_AFTER_S = env.float("NOTIFY_READINESS_AFTER_S", default=300.0)
# E-mail channels: Django's SMTP backend; a channel may name its own server instead.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="opsconsole@localhost")
READYZ_REQUIRE_WORKER = env.bool("READYZ_REQUIRE_WORKER", default=True)

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # results live in jobs.Run, not in Celery
# The Run row is the truth and a message only wakes a worker up: a worker acknowledges
# a message when it starts it, and the runner's reaper (not the broker's redelivery)
# resumes or ends a run whose worker died (docs/jobs.md, "Broker settings").
CELERY_TASK_ACKS_LATE = False
# One message reserved per worker process: a long run never sits behind another
# in a busy process's prefetch while an idle process could start it.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker reserved (prefetched, or waiting for its countdown) and did not
# start within this long goes back to the queue. Any longer than the longest retry
# backoff is enough: a copy delivered twice is a no-op (the runner claims each attempt
# once, under the run's row lock), and lost messages are the reaper's, not this timer's.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 900)}
# Runs (jobs.runner): heartbeat period, silence after which a worker counts as lost
# (and a message as overdue), and how long a run may wait for any worker at all.
RUN_HEARTBEAT_S = env.float("RUN_HEARTBEAT_S", 5.0)
RUN_LOST_AFTER_S = env.float("RUN_LOST_AFTER_S", 30.0)
RUN_QUEUE_TIMEOUT_S = env.float("RUN_QUEUE_TIMEOUT_S", 3600.0)
# Every worker writes a snapshot of itself to Redis this often (jobs/workers.py), and
# runs the reaper (one worker at a time); the overview reads the snapshots.
WORKER_SNAPSHOT_S = env.float("WORKER_SNAPSHOT_S", 2.0)
# Shared reads (opsconsole/shared.py): a page's data that is the same for every operator
# (readiness, dashboard tiles, the partitions inventory, the overview) is computed once
# per web process per this many seconds, however many operators poll it.
SHARED_READ_S = env.float("SHARED_READ_S", 2.0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Default schedules, copied into django-celery-beat once (operators edit them there).
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "refused_requests": {"()": "opsconsole.logfilters.RefusedRequestsWithoutTraceback"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["refused_requests"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
