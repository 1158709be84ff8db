"""An event's frame written straight to each socket: one frame's bytes for every connection.

A server's frames are not masked (RFC 6455, section 5.1), so the WebSocket
frame of one event is the same bytes on every connection that did not
negotiate an extension. The hub builds an event's ASGI message once per
runtime; the first connection that can take the frame's bytes serializes them
(websockets' own ``Frame.serialize``) and stores them in that shared message,
and every connection writes those bytes to its transport. Through the ASGI
``send`` each connection would frame the same text again and pass it through
Litestar's and uvicorn's wrappers: about half of a runtime's CPU at 500
connections (``docs/benchmarks.md``, "realtime").

Only uvicorn's ``websockets-sansio`` implementation (``tenantry run``'s) is
written to this way, and only while its connection is open, writable and
without extensions (permessage-deflate compresses per connection); anything
else, and every control frame, goes through the ASGI ``send`` as before. The
server's ``send`` is found where :class:`core.http.serving.BodyReadTimeout`
put it in the scope (:data:`core.http.serving.SERVER_SEND`); an app served
without it uses the ASGI path only.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from core.http.serving import SERVER_SEND

__all__ = ["FRAME_BYTES", "Wire"]

FRAME_BYTES = "tenantry.frame_bytes"
"""Key of a shared ``websocket.send`` message that holds its serialized text frame (servers
ignore keys they do not know, ASGI 3.0)."""


class Wire:
    """Writes ready frames to one connection of uvicorn's websockets-sansio implementation.

    Args:
        protocol: the connection's ``WebSocketsSansIOProtocol``.
    """

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any):
        self._protocol = protocol

    @classmethod
    def of(cls, scope: dict[str, Any]) -> Wire | None:
        """The wire of the connection of ``scope``, or None when only the ASGI path serves it."""
        server_send = scope.get(SERVER_SEND)
        protocol = getattr(server_send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol):
            return None
        conn = getattr(protocol, "conn", None)
        if conn is None or getattr(conn, "extensions", None) != [] or not _has_state(protocol):
            return None
        return cls(protocol)

    def write(self, message: dict[str, Any]) -> bool:
        """Write the text frame of the shared ``message``; False when the ASGI path must send it.

        False when the connection is not open (closing, closed, the client
        left), its transport is paused (the client's TCP window is full:
        the ASGI send waits, and the session queues what follows) or
        ``message`` carries no text.
        """
        protocol = self._protocol
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or protocol.conn.state is not State.OPEN
        ):
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        frame = message.get(FRAME_BYTES)
        if frame is None:
            text = message.get("text")
            if text is None:
                return False
            frame = message[FRAME_BYTES] = _serialize(text)
        transport.write(frame)
        return True


def _has_state(protocol: Any) -> bool:
    # The attributes write() reads, as uvicorn's websockets-sansio protocol
    # has them: another layout means another uvicorn, served by the ASGI path.
    return all(
        hasattr(protocol, name)
        for name in ("close_sent", "disconnected", "writable", "transport", "handshake_complete")
    ) and bool(protocol.handshake_complete)


def _serialize(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
