"""Structured logging: every record is one JSON object a line
(python-json-logger), with the error's type, message and full stack in
fields when there is one; and a WSGI middleware that logs each request
(method, path, status, duration_ms)."""

import logging
import sys
import time

from pythonjsonlogger import jsonlogger


class Formatter(jsonlogger.JsonFormatter):
    """python-json-logger's formatter with an ISO-8601 UTC "timestamp" and,
    for a record with an exception, "error_type" (the dotted class name) and
    "error_message" beside python-json-logger's own "exc_info" (the whole
    traceback as text)."""

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            cls = type(exc)
            log_record["error_type"] = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
            log_record["error_message"] = str(exc)


def setup(path):
    """Sends the root logger's INFO and above to path ("-": stderr) as JSON
    lines."""
    handler = logging.StreamHandler(sys.stderr) if path in ("", "-") else logging.FileHandler(path)
    handler.setFormatter(Formatter("%(levelname)s %(name)s %(process)d %(message)s", timestamp=True))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Connection-level chatter of the libraries stays out.
    for name in ("urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)


class RequestLog:
    """WSGI middleware logging one "request" record per request, with the
    time the app took, sessions and errors included."""

    def __init__(self, app, logger_name="estimates.request"):
        self.app = app
        self.log = logging.getLogger(logger_name)

    def __call__(self, environ, start_response):
        t0 = time.perf_counter()
        seen = {"status": 500}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            self.log.info(
                "request",
                extra={
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": seen["status"],
                    "duration_ms": round((time.perf_counter() - t0) * 1000, 1),
                    "remote_addr": environ.get("REMOTE_ADDR"),
                },
            )
