"""The exchange rates the dashboard shows, from a rates API over HTTP: a
synchronous call, made in the request, bounded by RATES_TIMEOUT."""

import logging

import requests
from flask import current_app

log = logging.getLogger("estimates.rates")
_http = requests.Session()


def current():
    """The rates (currency → rate), or {} when the API is not configured or
    does not answer in time (logged, the page shows no rates)."""
    url = current_app.config["RATES_URL"]
    if not url:
        return {}
    try:
        r = _http.get(url, timeout=current_app.config["RATES_TIMEOUT"])
        r.raise_for_status()
        return r.json().get("rates", {})
    except (requests.RequestException, ValueError) as e:
        log.warning("rates API unavailable", exc_info=e)
        return {}
