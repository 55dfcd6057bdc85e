"""gunicorn 20.1 settings of the reference target, from the environment.

Threaded workers (gthread); an error log and an access log in files, the
access log ending with the request time the server itself measured
(%(L)s, seconds with decimals), so a client's latency can be split into
time in the server and time before it.
"""
import os

wsgi_app = "reftarget.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
loglevel = "info"
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'
pidfile = os.environ.get("GUNICORN_PIDFILE") or None
