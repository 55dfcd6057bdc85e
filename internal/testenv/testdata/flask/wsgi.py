"""The WSGI entry point uWSGI loads (--module wsgi:application)."""
from estimates import create_app

application = create_app()
