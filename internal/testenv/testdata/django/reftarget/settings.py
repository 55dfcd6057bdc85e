"""Settings of the reference target: a small work-tracking site behind
allauth's login, on PostgreSQL through PgBouncer, with its cache and sessions
in Redis.

Every knob comes from an environment variable, the way the app would be
deployed; stampede's test harness (internal/testenv/django.go) sets them per
fault mode. Defaults are a sound single-host setup.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return int(v)


def env_list(name, default=()):
    v = os.environ.get(name, "")
    items = [x.strip() for x in v.split(",") if x.strip()]
    return items or list(default)


SECRET_KEY = env("DJANGO_SECRET_KEY", "reftarget-not-secret-only-for-local-load-tests")
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "work",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "reftarget.urls"
WSGI_APPLICATION = "reftarget.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL, normally through PgBouncer (DB_PORT is the bouncer's).
# CONN_MAX_AGE > 0 keeps each thread's connection open between requests;
# ATOMIC_REQUESTS wraps every view in one transaction.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env("DB_HOST", "127.0.0.1"),
        "PORT": env("DB_PORT", "5432"),
        "NAME": env("DB_NAME", "app"),
        "USER": env("DB_USER", "app"),
        "PASSWORD": env("DB_PASSWORD"),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 0),
        "ATOMIC_REQUESTS": env_bool("DB_ATOMIC_REQUESTS"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache and sessions in Redis through django-redis. allauth keeps its
# login-attempt counters in this cache too.
_redis_options = {"CLIENT_CLASS": "django_redis.client.DefaultClient"}
if env("REDIS_MAX_CONNECTIONS"):
    _redis_options["CONNECTION_POOL_KWARGS"] = {"max_connections": env_int("REDIS_MAX_CONNECTIONS", 0)}
if env("REDIS_SOCKET_TIMEOUT"):
    _redis_options["SOCKET_TIMEOUT"] = float(env("REDIS_SOCKET_TIMEOUT"))
    _redis_options["SOCKET_CONNECT_TIMEOUT"] = float(env("REDIS_SOCKET_TIMEOUT"))
if env_bool("REDIS_IGNORE_EXCEPTIONS"):
    # Treat Redis as optional: a failed cache call returns None instead of
    # raising (django-redis' documented "memcached-like" behaviour).
    _redis_options["IGNORE_EXCEPTIONS"] = True
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env("REDIS_URL", "redis://127.0.0.1:6379/1"),
        "OPTIONS": _redis_options,
    }
}
SESSION_ENGINE = env("SESSION_ENGINE", "django.contrib.sessions.backends.cache")
SESSION_CACHE_ALIAS = "default"

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")

# Unset: Django's defaults (PBKDF2-SHA256 at 260,000 iterations first).
# A comma-separated list of dotted paths replaces them, the first one
# hashing new passwords.
if env("PASSWORD_HASHERS"):
    PASSWORD_HASHERS = env_list("PASSWORD_HASHERS")

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

SITE_ID = 1
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"

# allauth 0.51: username login, no e-mail verification. The login-attempt
# limit is per login name (site:username), counted in the cache.
ACCOUNT_AUTHENTICATION_METHOD = "username"
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_EMAIL_REQUIRED = False
ACCOUNT_ADAPTER = "work.adapter.AccountAdapter"
ACCOUNT_LOGIN_ATTEMPTS_LIMIT = env_int("ACCOUNT_LOGIN_ATTEMPTS_LIMIT", 5) or None
ACCOUNT_LOGIN_ATTEMPTS_TIMEOUT = env_int("ACCOUNT_LOGIN_ATTEMPTS_TIMEOUT", 300)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True
STATIC_URL = "/static/"

# After the seed's story: request errors with their tracebacks and CSRF
# refusals go to an errors log file.
ERRORS_LOG = env("DJANGO_ERRORS_LOG", str(BASE_DIR / "errors.log"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "errors_file": {
            "class": "logging.FileHandler",
            "filename": ERRORS_LOG,
            "formatter": "plain",
            "level": "WARNING",
        },
    },
    "loggers": {
        "django.request": {"handlers": ["errors_file"], "level": "ERROR", "propagate": False},
        "django.security.csrf": {"handlers": ["errors_file"], "level": "WARNING", "propagate": False},
    },
}
