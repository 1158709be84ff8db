"""``tenantry tenants ...``: list, show, history, diff, rollback, move and apply tenant files.

A thin client of the admin API (:mod:`core.http.admin`) over HTTP: it reads
nothing from the database and validates nothing itself, so what it reports is
what every runtime on the store would do. The address is ``--url`` (default
``TENANTRY_ADMIN_URL``, else ``http://127.0.0.1:8000``), the bearer token
``--token`` (default ``TENANTRY_ADMIN_TOKEN``: the ops token, or a scoped one).

Exit statuses (``docs/ops.md#tenants-from-the-command-line``):

* 0: done;
* 1: the admin API refused it (an invalid file, an unknown tenant or version,
  a tenant outside the token's scope); ``apply`` still applies the other files;
* 2: it could not be asked: the URL cannot be reached, the token is missing or
  refused, the runtime failed (5xx) or something else answered.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_ADMIN_URL",
    "AdminClient",
    "AdminError",
    "add_tenants_parser",
    "unified_diff",
]

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


# ------------------------------------------------------------ commands


def _cmd_list(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.call("GET", "/tenants")
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    rows = [
        [
            t["id"],
            t["state"],
            str(t.get("version") or "-"),
            t.get("changed_by") or "-",
            _utc(t.get("changed_at")),
        ]
        for t in sorted(answer.get("tenants", []), key=lambda t: t["id"])
    ]
    if rows:
        print(_table(["ID", "STATE", "VERSION", "CHANGED BY", "CHANGED AT (UTC)"], rows))
    else:
        print("no tenants")
    for file, issues in sorted(answer.get("rejected", {}).items()):
        print(f"rejected {file}:", file=sys.stderr)
        for issue in issues:
            print(f"  {issue}", file=sys.stderr)
    return 0


def _cmd_show(client: AdminClient, args: argparse.Namespace) -> int:
    version = args.version
    if version is None:
        current = _history(client, args.id)[0]
        if current["action"] == "remove":
            raise AdminError(
                f"tenant {args.id!r} was removed (version {current['version']}); "
                f"show an earlier one with --version"
            )
        version = current["version"]
    text = _text(client, args.id, version)
    if not text:
        raise AdminError(f"version {version} of {args.id!r} is its removal: it has no text")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_history(client: AdminClient, args: argparse.Namespace) -> int:
    rows = [
        [
            str(v["version"]),
            v["checksum"][:12],
            v["changed_by"],
            _utc(v["changed_at"]),
            v["action"],
        ]
        for v in _history(client, args.id)
    ]
    print(_table(["VERSION", "CHECKSUM", "ACTOR", "TIME (UTC)", "ACTION"], rows))
    return 0


def _cmd_diff(client: AdminClient, args: argparse.Namespace) -> int:
    current = _history(client, args.id)[0]["version"]
    new = args.b if args.b is not None else current
    if args.a is not None:
        old = args.a
    elif current == 1:
        raise AdminError(f"tenant {args.id!r} has one version: nothing to compare it with")
    else:
        old = current - 1
    before = _text(client, args.id, old)
    after = _text(client, args.id, new)
    diff = unified_diff(args.id, before, after, old, new)
    if diff:
        sys.stdout.write(diff)
    else:
        print(f"versions {old} and {new} of {args.id!r} have the same text", file=sys.stderr)
    return 0


def _cmd_rollback(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.call("POST", f"/tenants/{_segment(args.id)}/rollback/{args.version}")
    print(
        f"{args.id}: version {answer.get('version')} is current, "
        f"the text of version {args.version} ({answer.get('state')})"
    )
    return 0


def _cmd_move(client: AdminClient, args: argparse.Namespace) -> int:
    answer = client.call(
        "POST",
        f"/tenants/{_segment(args.id)}/move",
        json={"to": args.to, "drop_old": args.drop_old},
    )
    rows = [[t["table"], str(t["source"]), str(t["target"])] for t in answer.get("tables", [])]
    print(_table(["TABLE", answer.get("source", ""), answer.get("target", "")], rows))
    kept = "dropped" if answer.get("dropped_old") else "kept (drop it with --drop-old)"
    print(
        f"{args.id}: moved from {answer.get('source')} to {answer.get('target')} "
        f"({answer.get('tenant', {}).get('state')}); the old copy is {kept}"
    )
    return 0


def _cmd_apply(client: AdminClient, args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            outcome = _apply_one(client, path)
        except AdminError as exc:
            if exc.status == UNREACHABLE:
                # Every other file would fail the same way.
                raise
            print(f"{path}: refused: {exc.message}", file=sys.stderr)
            for line in exc.details:
                print(f"  {line}", file=sys.stderr)
            status = REFUSED
            continue
        print(f"{path}: {outcome}")
    return status


def _apply_one(client: AdminClient, path: Path) -> str:
    """Upload one tenant file (``POST /admin/tenants?file=<name>``).

    The API takes the tenant id from the file's ``id``; sending the file's
    name makes it check that the two match, as a tenants folder does, and
    name the file in its errors (rewritten here to the path as given).

    Returns:
        ``created``, ``updated`` or ``unchanged``, with the version and state.

    Raises:
        AdminError: the file cannot be read, is not named ``<id>.yaml``, or the
            API refused it (its errors name ``path``, line and field).
    """
    if path.suffix not in TENANT_FILE_SUFFIXES:
        raise AdminError(f"a tenant file is named <id>.yaml, not {path.name!r}")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise AdminError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        answer = client.call("POST", "/tenants", content=content, params={"file": path.name})
    except AdminError as exc:
        exc.details = [
            str(path) + line[len(path.name) :] if line.startswith(f"{path.name}:") else line
            for line in exc.details
        ]
        raise
    outcome = answer.get("outcome", "applied")
    return f"{outcome} (version {answer.get('version')}, {answer.get('state')})"


COMMANDS = {
    "list": _cmd_list,
    "show": _cmd_show,
    "history": _cmd_history,
    "diff": _cmd_diff,
    "rollback": _cmd_rollback,
    "move": _cmd_move,
    "apply": _cmd_apply,
}


def _run(args: argparse.Namespace) -> int:
    """Run one ``tenantry tenants`` command; print an :class:`AdminError` and return its status."""
    url = args.url or os.environ.get("TENANTRY_ADMIN_URL") or DEFAULT_ADMIN_URL
    token = args.token if args.token is not None else os.environ.get("TENANTRY_ADMIN_TOKEN", "")
    try:
        with AdminClient(url, token) as client:
            return COMMANDS[args.tenants_command](client, args)
    except AdminError as exc:
        print(f"tenantry tenants {args.tenants_command}: {exc.message}", file=sys.stderr)
        for line in exc.details:
            print(f"  {line}", file=sys.stderr)
        return exc.status


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, not {number}")
    return number


def add_tenants_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``tenants`` and its commands to the ``tenantry`` parser's subcommands.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned; the parsed
            namespace gets ``handler``, which returns the exit status.
    """
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        default=None,
        help=f"the runtime's base URL (default: TENANTRY_ADMIN_URL, else {DEFAULT_ADMIN_URL})",
    )
    connection.add_argument(
        "--token", default=None, help="admin bearer token (default: TENANTRY_ADMIN_TOKEN)"
    )
    tenants = sub.add_parser(
        "tenants", help="list, show, diff, roll back and apply tenant files (admin API)"
    )
    commands = tenants.add_subparsers(dest="tenants_command", required=True)

    listing = commands.add_parser(
        "list", parents=[connection], help="tenants with state, version, who changed them and when"
    )
    listing.add_argument("--json", action="store_true", help="print the API's JSON")

    show = commands.add_parser(
        "show", parents=[connection], help="print a tenant's stored YAML (secrets masked)"
    )
    show.add_argument("id", help="tenant id")
    show.add_argument(
        "--version", type=_positive, default=None, help="this version (default: current)"
    )

    history = commands.add_parser(
        "history", parents=[connection], help="a tenant's versions, newest first"
    )
    history.add_argument("id", help="tenant id")

    diff = commands.add_parser(
        "diff",
        parents=[connection],
        help="unified diff of two versions (default: previous vs current)",
    )
    diff.add_argument("id", help="tenant id")
    diff.add_argument("a", type=_positive, nargs="?", help="older version (default: previous)")
    diff.add_argument("b", type=_positive, nargs="?", help="newer version (default: current)")

    rollback = commands.add_parser(
        "rollback", parents=[connection], help="make an earlier version current again"
    )
    rollback.add_argument("id", help="tenant id")
    rollback.add_argument("version", type=_positive, help="the version whose text to restore")

    move = commands.add_parser(
        "move",
        parents=[connection],
        help="copy a tenant's schema to another PostgreSQL server and serve it from there",
    )
    move.add_argument("id", help="tenant id")
    move.add_argument(
        "--to",
        required=True,
        metavar="NAME",
        help="server name (default, or TENANTRY_DATABASE_URL_<NAME>)",
    )
    move.add_argument(
        "--drop-old", action="store_true", help="drop the schema on the old server after the switch"
    )

    apply = commands.add_parser(
        "apply", parents=[connection], help="create or replace tenants from <id>.yaml files"
    )
    apply.add_argument("files", type=Path, nargs="+", metavar="FILE", help="tenant files")

    tenants.set_defaults(handler=_run)
