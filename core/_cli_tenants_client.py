"""The HTTP client of the admin API and the output helpers of ``tenantry tenants``."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_ADMIN_URL = "http://127.0.0.1:8000"
"""Where ``tenantry run`` listens by default."""

TENANT_FILE_SUFFIXES = (".yaml", ".yml")
# The same suffixes as core.config.loader.TENANT_FILE_SUFFIXES, restated so
# that this client does not import the config package (and its plugins).

REFUSED = 1
UNREACHABLE = 2


class AdminError(Exception):
    """The admin API could not be asked, or refused the request.

    Attributes:
        message: one line for the person at the terminal.
        details: further lines (the API's field errors), printed indented.
        status: the exit status: 1 for a refusal, 2 when it could not be asked.
    """

    def __init__(self, message: str, *, details: list[str] | None = None, status: int = REFUSED):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.status = status


class AdminClient:
    """Calls to one runtime's ``/admin`` routes with one bearer token.

    Args:
        url: the runtime's base URL (``http://127.0.0.1:8000``).
        token: the admin token; ``""`` or None sends none (the API answers 401).
        timeout: seconds for connecting and for each answer; an upload waits
            for the tenant to start.
    """

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0):
        # Imported here: httpx takes longer to import than `tenantry --help` takes to answer.
        import httpx

        self.url = url.rstrip("/")
        self.token = token or ""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request to ``/admin<path>`` and return the decoded JSON answer.

        Args:
            method: ``GET`` or ``POST``.
            path: below ``/admin`` (``/tenants/filin/history``).
            content: a body (a tenant file), sent as ``application/yaml``.
            params: query parameters.
            json: a JSON body instead (``move``).

        Returns:
            The JSON body of a 2xx answer (a dict for every admin route).

        Raises:
            AdminError: status 2 when the URL cannot be reached, the token is
                missing or refused (401), the runtime failed (5xx) or the answer
                is not the admin API's JSON; status 1 with the problem's
                ``detail`` and ``errors`` for any other refusal (403, 404, 422...).
        """
        import httpx

        headers = {"Content-Type": "application/yaml"} if content is not None else None
        try:
            response = self._http.request(
                method, f"/admin{path}", content=content, params=params, headers=headers, json=json
            )
        except httpx.ConnectError:
            raise AdminError(
                f"cannot connect to the admin API at {self.url} (is `tenantry run` serving "
                f"there? set --url or TENANTRY_ADMIN_URL)",
                status=UNREACHABLE,
            ) from None
        except httpx.TimeoutException:
            raise AdminError(
                f"the admin API at {self.url} did not answer in time", status=UNREACHABLE
            ) from None
        except httpx.HTTPError as exc:
            raise AdminError(
                f"cannot talk to the admin API at {self.url}: {type(exc).__name__}: {exc}",
                status=UNREACHABLE,
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if not isinstance(body, dict):
                raise AdminError(
                    f"{self.url} did not answer like the admin API "
                    f"(HTTP {response.status_code}, {response.headers.get('content-type', 'no type')})",
                    status=UNREACHABLE,
                )
            return body
        raise self._problem(response, body if isinstance(body, dict) else {})

    def _problem(self, response: httpx.Response, problem: dict[str, Any]) -> AdminError:
        status = response.status_code
        detail = str(problem.get("detail") or response.reason_phrase or f"HTTP {status}")
        if status == 401:
            if not self.token:
                return AdminError(
                    "no admin token: pass --token or set TENANTRY_ADMIN_TOKEN", status=UNREACHABLE
                )
            return AdminError(
                f"the admin token was refused by {self.url} (check --token or "
                f"TENANTRY_ADMIN_TOKEN); the runtime says: {detail}",
                status=UNREACHABLE,
            )
        if status == 403:
            return AdminError(f"the admin token may not do this: {detail}")
        if status >= 500:
            return AdminError(f"the runtime at {self.url} failed: {detail}", status=UNREACHABLE)
        if not problem:
            return AdminError(
                f"{self.url} did not answer like the admin API (HTTP {status} {detail})",
                status=UNREACHABLE,
            )
        return AdminError(detail, details=[_error_text(e) for e in problem.get("errors") or []])


def _error_text(error: Any) -> str:
    """One field error of a problem body: a ``file:line: field: reason`` string, or a
    ``{"key", "message"}`` mapping (a request validation error)."""
    if isinstance(error, dict):
        key, message = error.get("key"), error.get("message", "invalid")
        return f"{key}: {message}" if key else str(message)
    return str(error)


def unified_diff(tenant_id: str, before: str, after: str, old: int, new: int) -> str:
    """Unified diff (difflib) of two versions of a tenant file.

    Args:
        tenant_id: names the file in the headers (``filin.yaml@2``).
        before: the text of version ``old`` (``""`` for none or a removal).
        after: the text of version ``new``.
        old: the older version's number.
        new: the newer version's number.

    Returns:
        The diff, each line ending in a newline; ``""`` when the texts are equal.
    """
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{tenant_id}.yaml@{old}",
            tofile=f"{tenant_id}.yaml@{new}",
        )
    )


def _utc(timestamp: str | None) -> str:
    """An ISO 8601 time from the API as ``YYYY-MM-DD HH:MM:SS`` in UTC (``-`` when absent)."""
    if not timestamp:
        return "-"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _segment(tenant_id: str) -> str:
    """``tenant_id`` for a URL path, checked first: the server decodes ``%2F``, so a
    typed ``../x`` would reach another route and answer a bare 404."""
    from core.config.model import TENANT_ID_PATTERN

    if re.match(TENANT_ID_PATTERN, tenant_id) is None:
        raise AdminError(f"unknown tenant {tenant_id!r} (a tenant id matches {TENANT_ID_PATTERN})")
    return tenant_id


def _history(client: AdminClient, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's stored versions, newest first (``GET /admin/tenants/{id}/history``)."""
    return client.call("GET", f"/tenants/{_segment(tenant_id)}/history")["versions"]


def _text(client: AdminClient, tenant_id: str, version: int) -> str:
    """Version ``version``'s text, inline secrets masked by the API (``""`` for a removal)."""
    return client.call("GET", f"/tenants/{_segment(tenant_id)}/versions/{version}")["text"]
