"""The ``tenantry`` command: run, migrate, import, check, schema, plugins, fake-botapi, tenants."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from core.http.app import create_app
    from core.http.serving import serve
    from core.runtime.logging import configure_logging
    from core.runtime.settings import RuntimeSettings

    configure_logging(args.log_level, json=not args.console_logs)
    settings = RuntimeSettings.from_env(tenants_dir=args.tenants, listen_host=args.host)
    serve(create_app(settings), settings, host=args.host, port=args.port)
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from core.runtime.logging import configure_logging
    from core.runtime.settings import RuntimeSettings

    configure_logging("INFO", json=False)
    settings = RuntimeSettings.from_env(tenants_dir=args.tenants, watch=False)
    return asyncio.run(_migrate(settings, args.tenant))


def _load_folder(paths: list[Path], pm: object) -> tuple[list[object], bool]:
    """Validate tenant files and their clashes, printing problems; return the valid specs and
    whether everything was valid."""
    from core.config.loader import check_tenant_set, load_tenant_file
    from core.config.model import ConfigError, ConfigIssue

    specs, ok = [], True
    for path in paths:
        try:
            specs.append(load_tenant_file(path, pm))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            ok = False
        except Exception as exc:  # a plugin's check with a bug: report the file, check the rest
            print(
                ConfigIssue(
                    str(path), None, "", f"could not be loaded: {type(exc).__name__}: {exc}"
                ),
                file=sys.stderr,
            )
            ok = False
    for issue in check_tenant_set(specs):
        print(issue, file=sys.stderr)
        ok = False
    return specs, ok


def _tenant_files(folder: Path) -> list[Path]:
    from core.config.loader import TENANT_FILE_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.suffix in TENANT_FILE_SUFFIXES)


async def _migrate(settings: object, only: str | None) -> int:
    from core.runtime.control import schema_claim
    from core.runtime.embedded import EmbeddedServers
    from core.runtime.plugins import build_plugin_manager
    from core.storage.db import create_pool
    from core.storage.migrations import prepare_tenant_schema

    pm = build_plugin_manager()
    specs, ok = _load_folder(_tenant_files(settings.tenants_dir), pm)
    if only:
        specs = [s for s in specs if s.config.id == only]
        if not specs:
            print(f"no valid tenant {only!r} in {settings.tenants_dir}", file=sys.stderr)
            return 2
    embedded = EmbeddedServers()
    dsn = settings.database_url or embedded.start_postgres(settings.data_dir / "pg")
    # Each tenant's schema on its own server (storage.database).
    pools: dict[str, object] = {}
    try:
        for spec in specs:
            database = spec.config.storage.database
            if database not in pools:
                pools[database] = await create_pool(
                    _server_dsn(settings, dsn, database), min_size=1, max_size=2
                )
            applied = await prepare_tenant_schema(
                pools[database], pm, spec.config.schema, spec.features, list(spec.machines.values())
            )
            where = schema_claim(database, spec.config.schema)
            print(f"{spec.config.id} ({where}): " + (", ".join(applied) or "up to date"))
    finally:
        for pool in pools.values():
            await pool.close()
        embedded.close()
    return 0 if ok else 1


def _server_dsn(settings: object, default_dsn: str, database: str) -> str:
    """The DSN of server ``database`` (``storage.database``): ``default_dsn`` for ``default``.

    A name the tenant files accepted comes from the same environment, so it is there.
    """
    return default_dsn if database == "default" else settings.databases[database]


def _cmd_import(args: argparse.Namespace) -> int:
    from core.runtime.logging import configure_logging
    from core.runtime.settings import RuntimeSettings

    for file in args.files:
        if not file.is_file():
            print(f"{file}: no such file", file=sys.stderr)
            return 2
    configure_logging("WARNING", json=False)
    settings = RuntimeSettings.from_env(tenants_dir=args.tenants, watch=False)
    return asyncio.run(_import(settings, args.tenant, args.importer, args.files, args.dry_run))


async def _import(
    settings: object, tenant_id: str, name: str, paths: list[Path], dry_run: bool
) -> int:
    """Run one plugin importer (``register_importers``) for one tenant; print its report."""
    from core.runtime.embedded import EmbeddedServers
    from core.runtime.plugins import build_plugin_manager
    from core.storage.db import create_pool
    from core.storage.migrations import prepare_tenant_schema

    pm = build_plugin_manager()
    specs, _ = _load_folder(_tenant_files(settings.tenants_dir), pm)
    spec = next((s for s in specs if s.config.id == tenant_id), None)
    if spec is None:
        print(f"no valid tenant {tenant_id!r} in {settings.tenants_dir}", file=sys.stderr)
        return 2
    from core.runtime.contributions import contributions_of

    importers = {i.name: i for group in contributions_of(pm).importers.values() for i in group}
    importer = importers.get(name)
    if importer is None or importer.feature not in spec.features:
        known = ", ".join(sorted(i for i, imp in importers.items() if imp.feature in spec.features))
        print(f"{tenant_id} has no importer {name!r} (it has: {known or 'none'})", file=sys.stderr)
        return 2
    if len(paths) > 1 and not importer.many_files:
        print(f"importer {name!r} reads one file, not {len(paths)}", file=sys.stderr)
        return 2
    path = paths[0]
    embedded = EmbeddedServers()
    dsn = settings.database_url or embedded.start_postgres(settings.data_dir / "pg")
    dsn = _server_dsn(settings, dsn, spec.config.storage.database)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await prepare_tenant_schema(
            pool, pm, spec.config.schema, spec.features, list(spec.machines.values())
        )
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute(f'SET LOCAL search_path TO "{spec.config.schema}"')
                report = await importer.run(
                    conn, paths if importer.many_files else path, spec.config
                )
            except BaseException:
                await transaction.rollback()
                raise
            if dry_run:
                await transaction.rollback()
            else:
                await transaction.commit()
            if importer.record is not None:
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{spec.config.schema}"')
                    await importer.record(conn, report, list(paths), dry_run)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
        embedded.close()
    for issue in report.issues:
        print(f"{issue.file or path}:{issue.line}: {issue.reason}", file=sys.stderr)
    verb = "would write" if dry_run else "wrote"
    print(
        f"{tenant_id} {name}: read {report.read}, {verb} {report.written}, "
        f"already present {report.skipped}, bad lines {len(report.issues)}"
        + (" (dry run: nothing written)" if dry_run else "")
    )
    for line in report.details:
        print(line)
    return 1 if report.issues else 0


def _cmd_check(args: argparse.Namespace) -> int:
    from core.runtime.plugins import build_plugin_manager

    paths = [Path(p) for p in args.files] or _tenant_files(Path(args.tenants))
    specs, ok = _load_folder(paths, build_plugin_manager())
    for spec in specs:
        print(f"{spec.source}: ok")
    return 0 if ok else 1


def _cmd_schema(args: argparse.Namespace) -> int:
    from core.config.schema import tenant_json_schema
    from core.runtime.plugins import build_plugin_manager

    print(json.dumps(tenant_json_schema(build_plugin_manager()), indent=2, ensure_ascii=False))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from core.runtime.plugins import build_plugin_manager, hook_summary

    summary = hook_summary(build_plugin_manager())
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for plugin in summary:
        print(f"{plugin['name']:<12} {plugin['version']:<22} {', '.join(plugin['hooks'])}")
    return 0


def _cmd_fake_botapi(args: argparse.Namespace) -> int:
    from core.testing.botapi import main as botapi_main

    botapi_main(["--host", args.host, "--port", str(args.port)])
    return 0


def _version() -> str:
    """The installed distribution's version, or ``source`` in a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tenantry")
    except PackageNotFoundError:
        return "source"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tenantry`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="tenantry", description="Run many Telegram businesses from one codebase."
    )
    parser.add_argument("--version", action="version", version=f"tenantry {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve every tenant (webhooks, polling, API)")
    run.add_argument(
        "--tenants",
        type=Path,
        default=None,
        help="tenants folder (default: tenants, or TENANTRY_TENANTS_DIR)",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--log-level", default="INFO")
    run.add_argument(
        "--console-logs", action="store_true", help="human-readable logs instead of JSON"
    )
    run.set_defaults(handler=_cmd_run)

    migrate = sub.add_parser("migrate", help="apply migrations without serving")
    migrate.add_argument("--tenants", type=Path, default=None)
    migrate.add_argument("--tenant", default=None, help="only this tenant id")
    migrate.set_defaults(handler=_cmd_migrate)

    check = sub.add_parser("check", help="validate tenant files and exit")
    check.add_argument("files", nargs="*")
    check.add_argument("--tenants", default="tenants")
    check.set_defaults(handler=_cmd_check)

    load = sub.add_parser("import", help="load a tenant's data from a file (a plugin's importer)")
    load.add_argument("tenant", help="tenant id")
    load.add_argument("importer", help="what to import, e.g. subscribers (broadcast)")
    load.add_argument(
        "files", type=Path, nargs="+", metavar="file", help="one file, or several for shifts"
    )
    load.add_argument("--tenants", type=Path, default=None)
    load.add_argument(
        "--dry-run", action="store_true", help="report what would be written, write nothing"
    )
    load.set_defaults(handler=_cmd_import)

    schema = sub.add_parser("schema", help="print the JSON Schema of a tenant file")
    schema.set_defaults(handler=_cmd_schema)

    plugins = sub.add_parser("plugins", help="list plugins with version and hooks")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(handler=_cmd_plugins)

    fake = sub.add_parser(
        "fake-botapi", help="run the local Bot API stand-in (for trying bots offline)"
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8081)
    fake.set_defaults(handler=_cmd_fake_botapi)

    from core.cli_tenants import add_tenants_parser

    add_tenants_parser(sub)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
