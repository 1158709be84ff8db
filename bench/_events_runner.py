"""A runtime process of ``bench/events.py``: ``tenantry run`` with the ``eventsbench`` plugin.

The plugin is registered the way the tests register theirs
(``build_plugin_manager(extra=[...])`` handed to ``create_app``), not
installed; everything else is what ``python -m core.cli run`` does: settings
from the ``TENANTRY_*`` environment (so ``TENANTRY_GC_FREEZE`` is on unless
set, and ``TENANTRY_RUN_EVENTS`` decides whether this process consumes), JSON
logs, uvicorn on its default event loop (uvloop when installed) with the
runtime's HTTP limits and the body deadline.

Usage (by ``bench/events.py``)::

    python bench/_events_runner.py --tenants DIR --port 8123
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the runtime until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=Path, required=True, help="tenant files folder")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--log-level", default="WARNING", help="default WARNING")
    args = parser.parse_args(argv)

    import _events_plugin

    from core.http.app import create_app
    from core.http.serving import serve
    from core.runtime.logging import configure_logging
    from core.runtime.plugins import build_plugin_manager
    from core.runtime.settings import RuntimeSettings

    configure_logging(args.log_level, json=True)
    settings = RuntimeSettings.from_env(tenants_dir=args.tenants)
    pm = build_plugin_manager(extra=[("eventsbench", _events_plugin)])
    serve(create_app(settings, pm), settings, host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
