"""A runtime process for the realtime tests: ``python tests/realtime/realtime_runtime.py PORT``.

As tests/crash_runtime.py: settings from the ``TENANTRY_*`` environment (as
for ``tenantry run``), plus the ``flood`` test plugin (tests/realtime/_flood_plugin.py).
"""

from __future__ import annotations

import sys

import _flood_plugin
import uvicorn

from core.http.app import create_app
from core.runtime.plugins import build_plugin_manager
from core.runtime.settings import RuntimeSettings

if __name__ == "__main__":
    pm = build_plugin_manager(extra=[("flood", _flood_plugin)])
    app = create_app(RuntimeSettings.from_env(), pm)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
