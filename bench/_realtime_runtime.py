"""``tenantry run`` with another uvicorn WebSocket implementation, for ``bench/realtime.py --ws``.

What ``core.cli``'s ``run`` does (the same app, middleware and uvicorn
options of ``core.http.serving``), plus uvicorn's ``ws`` option, which the
command does not expose: ``websockets-sansio`` (uvicorn's choice when the
``websockets`` package is installed, as here), ``websockets`` (its legacy
protocol) or ``wsproto``.

Usage (by ``bench/realtime.py``)::

    python bench/_realtime_runtime.py --ws wsproto --tenants DIR --port 8123
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the runtime until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ws", required=True, choices=["websockets-sansio", "websockets", "wsproto"]
    )
    parser.add_argument("--tenants", required=True, type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    from core.http.app import create_app
    from core.http.serving import serve
    from core.runtime.logging import configure_logging
    from core.runtime.settings import RuntimeSettings

    configure_logging(args.log_level, json=True)
    settings = RuntimeSettings.from_env(tenants_dir=args.tenants, listen_host="127.0.0.1")
    serve(create_app(settings), settings, host="127.0.0.1", port=args.port, ws=args.ws)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
