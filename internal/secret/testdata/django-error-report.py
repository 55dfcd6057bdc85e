"""Writes django-error-report.txt: a real Django 3.2 error report (DEBUG=True)
of a login POST carrying every kind of secret. Run with Debian's python3:
/usr/bin/python3 django-error-report.py > django-error-report.txt
"""
import sys
from django.conf import settings
settings.configure(DEBUG=True, ALLOWED_HOSTS=['*'], SECRET_KEY='x', DEFAULT_CHARSET='utf-8',
    DATABASES={'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'app', 'USER': 'app', 'PASSWORD': 'DBPASS-1', 'HOST': '127.0.0.1', 'PORT': 6432}},
    INSTALLED_APPS=[], LOGGING_CONFIG=None)
import django
django.setup()
from django.test import RequestFactory
from django.views.debug import ExceptionReporter
rf = RequestFactory()
req = rf.post('/accounts/login/?next=/dashboard/&password=QSPASS-2', {'csrfmiddlewaretoken': 'CSRFFORM-3', 'login': 'user0001', 'password': 'USERPASS-4'},
    HTTP_COOKIE='csrftoken=CSRFCOOKIE-5; sessionid=SESSION-6', HTTP_AUTHORIZATION='Bearer BEARER-7', HTTP_X_CSRFTOKEN='CSRFHDR-8')
try:
    raise RuntimeError("boom")
except RuntimeError:
    exc_type, exc_value, tb = sys.exc_info()
rep = ExceptionReporter(req, exc_type, exc_value, tb)
print(rep.get_traceback_text())
