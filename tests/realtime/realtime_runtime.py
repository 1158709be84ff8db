"""A runtime process for the realtime tests: ``python tests/realtime/realtime_runtime.py PORT``.

As tests/crash_runtime.py: settings from the ``TENANTRY_*`` environment (as
for ``tenantry run``), plus the ``flood`` test plugin (tests/realtime/_flood_plugin.py).
"""

from __future__ import annotations

import sys

import _flood_plugin

from core.http.app import create_app
from core.http.serving import serve
from core.runtime.plugins import build_plugin_manager
from core.runtime.settings import RuntimeSettings

if __name__ == "__main__":
    pm = build_plugin_manager(extra=[("flood", _flood_plugin)])
    settings = RuntimeSettings.from_env()
    # Served as tenantry run serves it (the realtime plugin's frames go the same way).
    serve(create_app(settings, pm), settings, host="127.0.0.1", port=int(sys.argv[1]))
