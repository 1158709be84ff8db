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
import json
import os
import sys
from pathlib import Path

from core._cli_tenants_client import (
    DEFAULT_ADMIN_URL,
    REFUSED,
    TENANT_FILE_SUFFIXES,
    UNREACHABLE,
    AdminClient,
    AdminError,
    _history,
    _segment,
    _table,
    _text,
    _utc,
    unified_diff,
)
from core._cli_tenants_client import _error_text as _error_text  # re-exported: it lived here

__all__ = [
    "DEFAULT_ADMIN_URL",
    "AdminClient",
    "AdminError",
    "add_tenants_parser",
    "unified_diff",
]


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
