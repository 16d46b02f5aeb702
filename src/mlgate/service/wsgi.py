"""WSGI entry point for servers other than `mlgate serve`: ``mlgate.service.wsgi:application``.

Configuration comes from ``MLGATE_SERVE_*`` environment variables (and the file named by
``MLGATE_SERVE_CONFIG``); a configuration error stops the import with the message.
"""

from __future__ import annotations

from mlgate.service.app import create_app_from_env
from mlgate.service.logs import configure

configure()
application = create_app_from_env()
