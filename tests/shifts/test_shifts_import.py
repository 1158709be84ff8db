"""``tenantry import <tenant> shifts <files...>``: dry run, bad rows with file and line, re-runs, sync log."""

from __future__ import annotations

import asyncio
import re
import secrets
import textwrap
from pathlib import Path

import asyncpg
import yaml
from conftest import SHIFTS_SETTINGS

from core.cli import main

FILES = {
    "employees.csv": """\
        employee_id,name,telegram_id,role,hourly_rate
        E1,Anna Petrova,7201,staff,100
        E2,Boris,,manager,
        """,
    "shifts.csv": """\
        shift_id,employee_id,date,clock_in,clock_out,sales_bar,sales_tips,commission,status
        S1,E1,02.11.2026,10:00,18:30,"1 200,00",300,54,approved
        S2,E1,2026-11-07,20:00,02:00,2500,0,,approved
        S3,E2,2026-11-07,10:00,14:00,100,0,1,submitted
        """,
    "bonuses.csv": """\
        shift_id,bonus,amount,name
        S2,weekend,50,Weekend
        """,
    "employee_ranks.csv": """\
        employee_id,month,rank
        E1,2026-11,silver
        """,
    "rates.csv": """\
        from,to,percent
        0,500,3
        500,1000,5
        1000,,7
        """,
}


def write(folder: Path, files: dict[str, str]) -> list[str]:
    paths = []
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
        paths.append(str(folder / name))
    return paths


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


async def run_cli(capsys, tenants: Path, *args: str) -> Result:
    """``tenantry import crew shifts <args> --tenants <folder>``, in a thread of this process.

    ``core.cli.main`` as the console script runs it (its own event loop); in
    process, so the modules the command imports are loaded once per session.
    """
    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["import", "crew", "shifts", *args, "--tenants", str(tenants)]
    )
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


async def test_dry_run_bad_rows_run_and_rerun(tmp_path, tenantry_database_url, capsys, monkeypatch):
    monkeypatch.setenv("TENANTRY_DATABASE_URL", tenantry_database_url)
    schema = f"imp_{secrets.token_hex(4)}"
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    config = {
        "id": "crew",
        "timezone": "UTC",
        "bot": {"token": "5:abc"},
        "storage": {"schema": schema, "redis_prefix": f"{schema}:"},
        "features": {"shifts": SHIFTS_SETTINGS},
    }
    (tenants / "crew.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    paths = write(sheets, FILES)
    conn = await asyncpg.connect(tenantry_database_url)
    try:
        dry = await run_cli(capsys, tenants, *paths, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would write 7" in dry.stdout and "(dry run: nothing written)" in dry.stdout
        assert "employees: 2 new, 0 already present" in dry.stdout
        assert "rates: the sheet matches features.shifts.commission.rates" in dry.stdout
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".shifts') == 0

        broken = write(
            tmp_path,
            {
                "shifts.csv": FILES["shifts.csv"]
                + "S4,E9,2026-11-08,10:00,11:00,1,0,,approved\nS5,E1,2026-11-31,10:00,11:00,x,0,,paid\n"
            },
        )
        bad = await run_cli(capsys, tenants, paths[0], *broken)
        assert bad.returncode == 1
        assert (
            f"{broken[0]}:5: employee_id 'E9' is in no employees file nor the database"
            in bad.stderr
        )
        assert f"{broken[0]}:6: date: '2026-11-31' is not a date" in bad.stderr
        assert "nothing written" in bad.stdout
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".employees') == 0
        # The dry run and the refused run are in the sync log, with the refused one's bad rows.
        refused = await conn.fetch(
            f'SELECT dry_run, errors, files, counts FROM "{schema}".sync_log ORDER BY id'
        )
        assert [(r["dry_run"], r["errors"]) for r in refused] == [(True, 0), (False, 2)]
        assert '"employees": {"new": 2, "existing": 0}' in refused[0]["counts"]
        assert broken[0] in refused[1]["files"]

        first = await run_cli(capsys, tenants, *paths)
        assert first.returncode == 0, first.stderr
        assert "wrote 7, already present 0" in first.stdout
        rows = await conn.fetch(
            f"SELECT external_id, status, worked_seconds, sales_total, commission, base_pay, bonus_total, total"
            f' FROM "{schema}".shifts ORDER BY external_id'
        )
        assert [tuple(r) for r in rows] == [
            # recorded commission 54.00; no recorded base pay
            ("S1", "approved", 30600, 150000, 5400, 0, 0, 5400),
            # overnight; commission by today's rules: 1500 + 2500 + 150000 x 7%; the recorded bonus
            ("S2", "approved", 21600, 250000, 14500, 0, 5000, 19500),
            ("S3", "submitted", 14400, 10000, 100, 0, 0, 100),
        ]
        anna = await conn.fetchrow(
            f'SELECT id, user_id, hourly_rate FROM "{schema}".employees WHERE external_id = $1',
            "E1",
        )
        assert (anna["user_id"], anna["hourly_rate"]) == (7201, 10000)
        assert (
            await conn.fetchval(
                f'SELECT rank FROM "{schema}".employee_ranks WHERE employee_id = $1', anna["id"]
            )
            == "silver"
        )

        again = await run_cli(capsys, tenants, *paths)
        assert again.returncode == 0, again.stderr
        assert "wrote 0, already present 7" in again.stdout
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".shifts') == 3
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".shift_bonuses') == 1
        log = await conn.fetch(
            f'SELECT dry_run, errors, counts FROM "{schema}".sync_log ORDER BY id'
        )
        assert [(r["dry_run"], r["errors"]) for r in log] == [
            (True, 0),
            (False, 2),
            (False, 0),
            (False, 0),
        ]
        assert '"shifts": {"new": 3, "existing": 0}' in log[2]["counts"]
        assert '"shifts": {"new": 0, "existing": 3}' in log[3]["counts"]
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def test_the_docs_example_set_on_crew_yaml(
    tmp_path, tenantry_database_url, capsys, monkeypatch
):
    """The example files of ``docs/plugins/shifts.md`` against ``tenants/crew.yaml``: the dry run
    prints what the docs say, the run writes it, a second run writes nothing."""
    from test_shifts_walkthrough import DOC, ROOT, fenced_blocks

    monkeypatch.setenv("TENANTRY_DATABASE_URL", tenantry_database_url)
    schema = f"imp_{secrets.token_hex(4)}"
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    crew = yaml.safe_load((ROOT / "tenants" / "crew.yaml").read_text(encoding="utf-8"))
    crew["storage"] = {"schema": schema, "redis_prefix": f"{schema}:"}
    (tenants / "crew.yaml").write_text(yaml.safe_dump(crew, allow_unicode=True), encoding="utf-8")
    section = DOC[DOC.index("An example set for `tenants/crew.yaml`") :]
    names = [n for n in re.findall(r"^`([a-z_]+\.csv)`$", section, flags=re.M)]
    sheets = [text for kind, text in fenced_blocks(section) if kind == "csv"]
    assert names == [
        "employees.csv",
        "rates.csv",
        "employee_ranks.csv",
        "shifts.csv",
        "bonuses.csv",
    ]
    paths = []
    for name, text in zip(names, sheets, strict=False):
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
        paths.append(str(tmp_path / name))
    printed = next(text for kind, text in fenced_blocks(section) if text.startswith("crew shifts:"))
    conn = await asyncpg.connect(tenantry_database_url)
    try:
        dry = await run_cli(capsys, tenants, *paths, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.strip() == printed
        first = await run_cli(capsys, tenants, *paths)
        assert "wrote 7, already present 0" in first.stdout, first.stdout + first.stderr
        totals = await conn.fetch(
            f'SELECT external_id, commission, total FROM "{schema}".shifts ORDER BY external_id'
        )
        # S101 is the walkthrough's Friday (commission 2 960 ₽ recorded, the weekend bonus 500 ₽);
        # S102 gets today's commission: 25 000 ₽ x 3 % = 750 ₽.
        assert [tuple(r) for r in totals] == [
            ("S101", 296000, 346000),
            ("S102", 75000, 75000),
            ("S103", 45000, 45000),
        ]
        again = await run_cli(capsys, tenants, *paths)
        assert "wrote 0, already present 7" in again.stdout
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
