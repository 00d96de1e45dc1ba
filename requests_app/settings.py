"""Settings from environment variables, with the embedded defaults of DESIGN §2.

No server configured → SQLite under ``var/``, Celery tasks run in-process (eager), artifacts under
``var/artifacts/``, e-mail printed to the console. Production sets ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``ARTIFACT_STORE_URL``.
"""
from __future__ import annotations

from pathlib import Path

import environ

from .security import DEV_SECRET_KEY, dev_fernet_key, production_secrets_check, sqlite_file_private

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # keys, database, evidence: owner only

# Production is DJANGO_DEBUG=false: it refuses to start without real secrets (production_secrets_check).
# Left unset, DEBUG is on and the public development defaults below are used (local use only).
DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="" if not DEBUG else DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",  # runserver leaves /static/ to WhiteNoise in every mode
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc from our own static files, never a CDN
    "requests_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/ and /favicon.ico, DEBUG or not
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "requests_app.middleware.DatabaseLockedMiddleware",
]
# Before anything reads the body: a request above REQUEST_MAX_BYTES is 413 without being read.
MIDDLEWARE.insert(0, "requests_app.middleware.RequestSizeLimitMiddleware")

ROOT_URLCONF = "requests_app.urls"
WSGI_APPLICATION = "requests_app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent sign-ins, code checks and job progress on the embedded database: readers never block
    # the writer (WAL), writers take the lock at BEGIN and wait up to SQLITE_TIMEOUT seconds for it
    # instead of failing mid-transaction; what still times out is a 503 (middleware.DatabaseLockedMiddleware).
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.float("SQLITE_TIMEOUT", default=30.0),
    })
    sqlite_file_private(DATABASES["default"]["NAME"])

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # persistent connections (issue 17 part 2: a new PostgreSQL backend per request cost more than the
    # request's own queries), checked before reuse; a ``?conn_max_age=`` in DATABASE_URL wins
    if "conn_max_age" not in env.str("DATABASE_URL", default=""):
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}  # rate limits; production: redis://
# bench/intake_load.py only: GET /bench/hello/ (a bare Django view on the same stack, the benchmark's floor)
BENCH_HELLO_ENDPOINT = env.bool("BENCH_HELLO_ENDPOINT", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Static files (WhiteNoise): served by the web process itself, with DEBUG on or off, so that the README's
# `manage.py runserver` gives a styled portal. Without `collectstatic` WhiteNoise finds the files in the
# apps (WHITENOISE_USE_FINDERS); a deployment that ran `collectstatic` into STATIC_ROOT may turn that off.
# Files at the site root (favicon.ico) come from WHITENOISE_ROOT.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
WHITENOISE_AUTOREFRESH = env.bool("WHITENOISE_AUTOREFRESH", default=DEBUG)
WHITENOISE_ROOT = BASE_DIR / "requests_app" / "static_root"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "requests_app.api.permissions.ReadOnlyForAuditor",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # fixed-window counters with one atomic cache increment (Redis INCR with CACHE_URL=redis://),
    # instead of DRF's per-client timestamp lists (requests_app/api/throttles.py)
    "DEFAULT_THROTTLE_CLASSES": [
        "requests_app.api.throttles.AnonRateThrottle",
        "requests_app.api.throttles.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/minute"),
        "user": env.str("THROTTLE_USER", default="600/minute"),
        "identity_code": env.str("THROTTLE_IDENTITY_CODE", default="10/hour"),  # per ticket and per IP
    },
    "DEFAULT_PARSER_CLASSES": [
        "requests_app.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "requests_app.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Erasure request compliance API",
    "DESCRIPTION": "Data-removal requests against ML models: review, approval, unlearning jobs, "
    "evaluation reports and signed certificates.",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI and ReDoc work offline: their JS/CSS come from drf-spectacular-sidecar's static files
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # deep links put a link inside each operation's toggle button (axe: nested-interactive)
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    # unlearning and preparation jobs share one status set (issue 14)
    "ENUM_NAME_OVERRIDES": {"JobStatusEnum": "requests_app.models.JobStatus"},
}

# --- Celery (DESIGN §9) ---------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"  # embedded mode: tasks run in-process, nothing is sent anywhere
CELERY_TASK_EAGER_PROPAGATES = False
# embedded mode: jobs approved or retried in the portal run on a thread of this process, not in the click
JOBS_EMBEDDED_BACKGROUND = env.bool("JOBS_EMBEDDED_BACKGROUND", default=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest job (seconds): an unacked long job is not redelivered while it runs.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=12 * 3600),
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "requests_app.tasks.job_run_task": {"queue": "gpu"},
    "requests_app.tasks.preparation_run_task": {"queue": "gpu"},  # corpus_ingest jobs are sent to "default"
    "requests_app.tasks.webhook_deliver_task": {"queue": "webhooks"},
    "requests_app.tasks.webhook_fan_out_task": {"queue": "webhooks"},
    "requests_app.tasks.email_send_task": {"queue": "email"},
    "requests_app.tasks.owner_notice_send_task": {"queue": "email"},  # the owner's outcome notices (issue 21)
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# --- Artifacts, keys, workflow policy ---------------------------------------------------------
ARTIFACT_STORE_URL = env.str("ARTIFACT_STORE_URL", default=f"file://{VAR_DIR / 'artifacts'}")
ARTIFACT_CACHE_DIR = Path(env.str("ARTIFACT_CACHE_DIR", default=str(VAR_DIR / "cache")))
JOB_WORK_DIR = Path(env.str("JOB_WORK_DIR", default=str(VAR_DIR / "jobs")))
CERTIFICATE_SIGNING_KEY_PATH = Path(
    env.str("CERTIFICATE_SIGNING_KEY_PATH", default=str(VAR_DIR / "keys" / "certificate_ed25519.pem"))
)
CERTIFICATE_ISSUER = env.str("CERTIFICATE_ISSUER", default="Erasure Compliance Service (dev)")
#: Operator opt-in (issue 16): path of a RESTOR report JSON (``python -m evaluation --profile restor --out``)
#: whose figure and numbers for the job's method are attached to every certificate's evaluation; "" = none.
CERTIFICATE_RESTOR_REPORT = env.str("CERTIFICATE_RESTOR_REPORT", default="")
IDENTITY_CODE_TTL_SECONDS = env.int("IDENTITY_CODE_TTL_SECONDS", default=30 * 60)
IDENTITY_CODE_MAX_ATTEMPTS = env.int("IDENTITY_CODE_MAX_ATTEMPTS", default=5)  # wrong codes per ticket in total
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
JOB_HEARTBEAT_INTERVAL = env.float("JOB_HEARTBEAT_INTERVAL", default=10.0)
JOB_HEARTBEAT_TIMEOUT = env.float("JOB_HEARTBEAT_TIMEOUT", default=120.0)
JOB_QUEUED_RESEND_SECONDS = env.float("JOB_QUEUED_RESEND_SECONDS", default=900.0)
EVALUATION_RETAIN_SAMPLE = env.int("EVALUATION_RETAIN_SAMPLE", default=40)
EVALUATION_MAX_NEW_TOKENS = env.int("EVALUATION_MAX_NEW_TOKENS", default=48)
# classifier families (issue 19): retain examples evaluated (RA and the SVC attack's members) and bootstrap resamples
EVALUATION_RETAIN_SAMPLE_CLASSIFIER = env.int("EVALUATION_RETAIN_SAMPLE_CLASSIFIER", default=500)
EVALUATION_BOOTSTRAP_RESAMPLES_CLASSIFIER = env.int("EVALUATION_BOOTSTRAP_RESAMPLES_CLASSIFIER", default=1000)
# U-LiRA shadow models per classifier job (issue 19; even, >= 2; 0 = not run). Each shadow trains the
# model's recipe and runs the job's method (digits CNN: about 4 s each on 2 CPU cores; dp2 adds a DP base)
CLASSIFIER_ULIRA_SHADOWS = env.int("CLASSIFIER_ULIRA_SHADOWS", default=4)
# image corpora (issue 19): largest accepted image, width x height pixels, checked before decoding
CORPUS_IMAGE_MAX_PIXELS = env.int("CORPUS_IMAGE_MAX_PIXELS", default=1_000_000)
FORGET_TEXT_RETENTION_DAYS = env.int("FORGET_TEXT_RETENTION_DAYS", default=30)
# DP claim policy (issue 12): a per-subject bound above these is stated as "no meaningful DP guarantee"
DP_POLICY_MAX_EPSILON = env.float("DP_POLICY_MAX_EPSILON", default=10.0)
DP_POLICY_MAX_DELTA = env.float("DP_POLICY_MAX_DELTA", default=1e-5)
# DP memory plan (issue 23): bytes one DP-SGD step may use; 0 = 80 % of the device (requests_app.memory)
DP_MEMORY_BUDGET_BYTES = env.int("DP_MEMORY_BUDGET_BYTES", default=0)

# Workflow policy (DESIGN §4)
FOUR_EYES_APPROVAL = env.bool("FOUR_EYES_APPROVAL", default=True)
DUPLICATE_WINDOW_DAYS = env.int("DUPLICATE_WINDOW_DAYS", default=30)
DUE_SOON_DAYS = env.int("DUE_SOON_DAYS", default=7)
EVIDENCE_MAX_BYTES = env.int("EVIDENCE_MAX_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
# Whole request bodies (files included) above this are refused from Content-Length before reading.
REQUEST_MAX_BYTES = env.int("REQUEST_MAX_BYTES", default=DATA_UPLOAD_MAX_MEMORY_SIZE)
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=EVIDENCE_MAX_BYTES + 64 * 1024)
FILE_UPLOAD_PERMISSIONS = 0o600
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)  # nesting of request JSON (api/parsers.py)

# Brute force and flooding (requests_app/ratelimit.py; counters in CACHES["default"]).
RATE_LIMITS = {
    "signin_email": env.str("RATE_SIGNIN_PER_EMAIL", default="5/hour"),
    "signin_ip": env.str("RATE_SIGNIN_PER_IP", default="30/hour"),
    "code_ticket": env.str("RATE_CODE_PER_TICKET", default="10/hour"),
    "code_ip": env.str("RATE_CODE_PER_IP", default="30/hour"),
}

# Fernet key for owner-supplied forget-set text at rest; production sets its own, not derived from SECRET_KEY.
EVIDENCE_ENCRYPTION_KEY = env.str("EVIDENCE_ENCRYPTION_KEY", default=dev_fernet_key(SECRET_KEY) if DEBUG else "")
if not DEBUG:
    production_secrets_check(SECRET_KEY, EVIDENCE_ENCRYPTION_KEY)

# HTTPS (check --deploy): on by default in production, each from the environment.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load-balancer probes over plain HTTP
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy: DJANGO_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO (only if the proxy
# always sets or strips that header).
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
NOTICE_MAX_ATTEMPTS = env.int("NOTICE_MAX_ATTEMPTS", default=6)  # e-mails to the data owner (services/notices.py)

CELERY_BEAT_SCHEDULE = {
    "flag-due-soon-tickets": {"task": "requests_app.tasks.tickets_flag_due_soon_task", "schedule": 3600.0},
    "requeue-stale-jobs": {"task": "requests_app.tasks.jobs_requeue_stale_task", "schedule": 30.0},
    "purge-expired-evidence": {"task": "requests_app.tasks.evidence_purge_task", "schedule": 6 * 3600.0},
    # issue 17: append new audit events to the Merkle log and sign a tree head
    "seal-audit-log": {"task": "requests_app.tasks.audit_log_seal_task",
                       "schedule": env.float("AUDIT_LOG_SEAL_SECONDS", default=60.0)},
}

# Web portal (requests_app/portal): e-mail sign-in links
LOGIN_URL = "portal:signin"
PORTAL_SIGNIN_TTL_SECONDS = env.int("PORTAL_SIGNIN_TTL_SECONDS", default=15 * 60)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="privacy@localhost")
# Told to owners whose request is declined (GDPR Art. 12(4), CCPA appeal); empty → DEFAULT_FROM_EMAIL.
PRIVACY_APPEAL_CONTACT = env.str("PRIVACY_APPEAL_CONTACT", default="")
PRIVACY_SUPERVISORY_AUTHORITY = env.str("PRIVACY_SUPERVISORY_AUTHORITY", default="")  # e.g. the lead authority
# Absolute links in e-mailed notices (the portal's address as owners reach it)
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# LOG_FORMAT=json: one JSON object per line with the ticket and job ids (requests_app/logging.py),
# in the web process and the worker (Celery then keeps this configuration instead of its own).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "requests_app.logging.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "requests_app.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context"],
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
