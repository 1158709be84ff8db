"""A runtime process with the crash test plugins: ``python tests/crash_runtime.py PORT``.

Settings come from the ``TENANTRY_*`` environment, as for ``tenantry run``.
"""

from __future__ import annotations

import sys

import uvicorn
from crash_plugin import Alpha, Beta

from core.http.app import create_app
from core.runtime.plugins import build_plugin_manager
from core.runtime.settings import RuntimeSettings

if __name__ == "__main__":
    pm = build_plugin_manager(extra=[("alpha", Alpha()), ("beta", Beta())])
    app = create_app(RuntimeSettings.from_env(), pm)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
