"""A local stand-in for the Telegram Bot API server, at the HTTP level.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(stand_in.base_url))``.
It answers ``{base}/bot{token}/{method}`` the way api.telegram.org does, records every call
for assertions, serves uploaded files at ``{base}/file/bot{token}/{file_path}``, and can be
told to fail. Results are realistic enough for aiogram to parse, not a full emulation: text is
echoed as sent, without parse_mode processing.

For humans, ``python -m core.testing.botapi --port 8081`` runs it in the foreground, with
``GET /_calls`` (optional ``?method=``), ``DELETE /_calls`` and ``POST /_updates/{bot_id}``
(one Update JSON, served to that bot's getUpdates).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from core.testing.botapi._bot_methods import GET_UPDATES_LIMIT, SECRET_TOKEN_PATTERN
from core.testing.botapi._message_methods import CAPTION_LIMIT, MESSAGE_TEXT_LIMIT
from core.testing.botapi._server import TOKEN_PATTERN, UPLOAD_LIMIT, BotAPIStandIn
from core.testing.botapi._state import RecordedCall, UploadedFile
from core.testing.botapi._steering import RATE_LIMITED_METHODS

__all__ = [
    "CAPTION_LIMIT",
    "GET_UPDATES_LIMIT",
    "MESSAGE_TEXT_LIMIT",
    "RATE_LIMITED_METHODS",
    "SECRET_TOKEN_PATTERN",
    "TOKEN_PATTERN",
    "UPLOAD_LIMIT",
    "BotAPIStandIn",
    "RecordedCall",
    "UploadedFile",
    "main",
]


async def _serve(host: str, port: int) -> None:
    stand_in = BotAPIStandIn()
    await stand_in.start(host, port)
    try:
        print(
            f"Bot API stand-in at {stand_in.base_url} (GET/DELETE /_calls, POST /_updates/<bot_id>)",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await stand_in.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in in the foreground until interrupted (Ctrl+C).

    Args:
        argv: Command-line arguments without the program name; ``sys.argv[1:]`` when None.
    """
    parser = argparse.ArgumentParser(
        prog="python -m core.testing.botapi", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="TCP port (default 8081)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))
