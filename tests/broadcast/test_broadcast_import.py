"""``tenantry import <tenant> subscribers <file.csv>``: dry run, bad lines by number, re-runs add nothing."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from core.cli import main

CSV = """user_id,first_name,username,language_code,city
8001,Anna,@anna,ru,Moscow
abc,Bad,,,
8002,Boris,,en,
8001,Anna again,,,
8003,Too,many,fields,here,extra
"""


async def _rows(dsn: str, query: str) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


def test_import_dry_run_then_import_then_rerun(
    tmp_path, tenantry_database_url, capsys, monkeypatch
):
    schema = f"timport_{secrets.token_hex(3)}"
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "imp.yaml").write_text(
        "id: imp\nbot: {token: '123456:TEST-imp', mode: webhook}\n"
        f"storage: {{schema: {schema}, redis_prefix: '{schema}:'}}\n"
        "features:\n  broadcast: {}\n",
        encoding="utf-8",
    )
    export = tmp_path / "subscribers.csv"
    export.write_text(CSV, encoding="utf-8")
    monkeypatch.setenv("TENANTRY_DATABASE_URL", tenantry_database_url)
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(tmp_path / "data"))
    args = ["import", "imp", "subscribers", str(export), "--tenants", str(tenants)]
    table = f'SELECT user_id, first_name, username, language_code, source, status FROM "{schema}".broadcast_subscribers ORDER BY user_id'
    try:
        assert main([*args, "--dry-run"]) == 1  # bad lines make the status 1
        out = capsys.readouterr()
        assert out.out.strip() == (
            "imp subscribers: read 5, would write 2, already present 0, bad lines 3 (dry run: nothing written)"
        )
        assert out.err.splitlines() == [
            f"{export}:3: user id 'abc' is not a Telegram user id",
            f"{export}:5: user id 8001 appears twice in the file",
            f"{export}:6: more fields than the header names",
        ]
        assert asyncio.run(_rows(tenantry_database_url, table)) == []

        assert main(args) == 1
        assert "read 5, wrote 2, already present 0, bad lines 3" in capsys.readouterr().out
        assert asyncio.run(_rows(tenantry_database_url, table)) == [
            {
                "user_id": 8001,
                "first_name": "Anna",
                "username": "anna",
                "language_code": "ru",
                "source": "import",
                "status": "active",
            },
            {
                "user_id": 8002,
                "first_name": "Boris",
                "username": None,
                "language_code": "en",
                "source": "import",
                "status": "active",
            },
        ]

        assert main(args) == 1
        assert "read 5, wrote 0, already present 2, bad lines 3" in capsys.readouterr().out
        assert len(asyncio.run(_rows(tenantry_database_url, table))) == 2

        assert main(["import", "imp", "nothing", str(export), "--tenants", str(tenants)]) == 2
        assert "imp has no importer 'nothing' (it has: subscribers)" in capsys.readouterr().err
    finally:
        asyncio.run(_rows(tenantry_database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
