"""Tenant YAML that cannot hurt the runtime: size, alias and nesting budgets, and one bad
file never stopping the other tenants (admin upload, folder watcher, restart, CLI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import msgspec
import yaml

from core import hookimpl

REFUSAL_SECONDS = 1.0  # generous bound the issue sets for refusing a hostile upload
HEALTH_SECONDS = 1.0  # each /health answer while such an upload is being checked
RELOAD_DEADLINE = 5.0  # seconds the ops docs allow for a file change to take effect


def bot_id(config: dict) -> int:
    return int(config["bot"]["token"].split(":")[0])


def alias_bomb(tenant_id: str, token: str) -> str:
    """A "billion laughs" tenant file: nine levels of nine aliases (9**9 strings expanded).

    Walking it in document order, the second ``*d`` of line 8 is where the
    expanded size passes 20000 nodes.
    """
    lines = [
        f"id: {tenant_id}",
        f'bot: {{token: "{token}"}}',
        "texts:",
        '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def recursive_alias(tenant_id: str, token: str) -> str:
    """A tenant file whose ``texts`` mapping contains itself (the alias is on line 4)."""
    return f'id: {tenant_id}\nbot: {{token: "{token}"}}\ntexts: &texts\n  welcome: *texts\n'


def deep_nesting(tenant_id: str, token: str, levels: int = 60) -> str:
    """A tenant file with ``levels`` nested mappings under ``texts`` (block style, one a line)."""
    lines = [f"id: {tenant_id}", f'bot: {{token: "{token}"}}', "texts:"]
    lines += [f"{'  ' * (level + 1)}k{level}:" for level in range(levels)]
    lines[-1] += " deepest"
    return "\n".join(lines) + "\n"


async def rejected_files(tenantry, *names: str) -> dict[str, list[str]]:
    """Poll ``/health`` until every file in ``names`` is listed as rejected; return them."""
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while True:
        health = (await tenantry.client.get("/health", headers=tenantry.admin_headers())).json()
        found = {
            name: errors
            for path, errors in health["rejected"].items()
            for name in names
            if path.endswith(f"/{name}")
        }
        if len(found) == len(names):
            return found
        assert asyncio.get_running_loop().time() < deadline, (
            f"{names} not all rejected in {RELOAD_DEADLINE} s: {health['rejected']}"
        )
        await asyncio.sleep(0.1)


async def answers(tenantry, bot_api, tenant_id, config, updates, command="start") -> str:
    """Send ``/<command>`` to ``tenant_id`` and return the text it answered."""
    before = len(bot_api.calls("sendMessage", bot_id=bot_id(config)))
    response = await tenantry.post_update(tenant_id, updates.command(command, user_id=9))
    assert response.status_code == 200, response.text
    calls = await bot_api.wait_for("sendMessage", bot_id=bot_id(config), count=before + 1)
    return calls[-1].params["text"]


class FragileSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings whose check has a bug: ``explode: true`` raises something msgspec does not wrap;
    ``think_seconds`` makes the check block its thread that long (a slow validation)."""

    explode: bool = False
    think_seconds: float = 0

    def __post_init__(self) -> None:
        time.sleep(self.think_seconds)  # blocks whatever thread validates, as slow code would
        if self.explode:
            raise RuntimeError("settings check crashed")


class FragilePlugin:
    """A plugin whose settings validation crashes (not a ConfigError) for ``explode: true``."""

    @hookimpl
    def register_settings(self) -> type[FragileSettings]:
        return FragileSettings


# ------------------------------------------------------------ admin upload


async def test_alias_bomb_upload_is_refused_fast_while_health_keeps_answering(tenantry):
    await tenantry.start(watch=False)
    health_seconds: list[float] = []
    uploading = asyncio.Event()

    async def poll_health() -> None:
        await uploading.wait()
        for _ in range(5):
            started = time.monotonic()
            response = await tenantry.client.get("/health")
            health_seconds.append(time.monotonic() - started)
            assert response.status_code == 200

    async def upload() -> tuple[float, object]:
        uploading.set()
        started = time.monotonic()
        response = await tenantry.client.post(
            "/admin/tenants",
            content=alias_bomb("bomb", "1:bomb"),
            headers=tenantry.admin_headers(),
        )
        return time.monotonic() - started, response

    (seconds, response), *_ = await asyncio.gather(upload(), *(poll_health() for _ in range(3)))
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        "<admin upload>:8: alias *d expands the document to more than 20000 nodes"
    ]
    assert seconds < REFUSAL_SECONDS, f"the bomb took {seconds:.2f} s to refuse"
    assert len(health_seconds) == 15
    assert max(health_seconds) < HEALTH_SECONDS, health_seconds
    assert not (tenantry.tenants_dir / "bomb.yaml").exists()
    assert tenantry.runtime.registry.get("bomb") is None


def unclosed_defaults(tenant_id: str, token: str) -> str:
    """A tenant file just under the size limit whose ``texts.welcome`` is one line of
    50,000 ``${A:-`` that never close, and whose ``texts.other`` reads ``TENANTRY_ADMIN_TOKEN``.

    A regular expression with a lazy default (``(?::-(.*?))?\\}``) rescans the
    rest of the line from every ``${``: quadratic, about three minutes here.
    """
    welcome = "${A:-" * 50_000
    return (
        f'id: {tenant_id}\nbot: {{token: "{token}"}}\n'
        f'texts: {{welcome: "{welcome}", other: "${{TENANTRY_ADMIN_TOKEN}}"}}\n'
    )


async def test_unclosed_references_on_one_long_line_are_scanned_in_linear_time(tenantry):
    await tenantry.start(watch=False)
    text = unclosed_defaults("lines", "7:lines")
    assert 240_000 < len(text.encode()) < 256 * 1024
    health_seconds: list[float] = []
    uploading = asyncio.Event()

    async def poll_health() -> None:
        await uploading.wait()
        for _ in range(5):
            started = time.monotonic()
            assert (await tenantry.client.get("/health")).status_code == 200
            health_seconds.append(time.monotonic() - started)

    async def upload() -> tuple[float, object]:
        uploading.set()
        started = time.monotonic()
        response = await tenantry.client.post(
            "/admin/tenants", content=text, headers=tenantry.admin_headers()
        )
        return time.monotonic() - started, response

    (seconds, response), *_ = await asyncio.gather(upload(), *(poll_health() for _ in range(3)))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error.startswith(
        "<admin upload>:3: texts.other: ${TENANTRY_ADMIN_TOKEN} is outside this tenant's namespace"
    ), error
    assert seconds < REFUSAL_SECONDS, f"the upload took {seconds:.2f} s to refuse"
    assert max(health_seconds) < HEALTH_SECONDS, health_seconds


async def test_recursive_alias_upload_answers_422_naming_the_alias(tenantry):
    await tenantry.start(watch=False)
    response = await tenantry.client.post(
        "/admin/tenants",
        content=recursive_alias("loop", "2:loop"),
        headers=tenantry.admin_headers(),
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == ["<admin upload>:4: recursive alias *texts"]
    assert not (tenantry.tenants_dir / "loop.yaml").exists()


async def test_upload_over_the_size_limit_answers_413(tenantry):
    await tenantry.start(watch=False)
    config = tenantry.tenant_config("big")
    text = yaml.safe_dump(config) + "# padding\n" * 30_000  # about 300 KB
    assert len(text.encode()) > 256 * 1024
    response = await tenantry.client.post(
        "/admin/tenants", content=text, headers=tenantry.admin_headers()
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "a tenant file is at most 262144 bytes"

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(text), 16_384):
            yield text[start : start + 16_384].encode()

    streamed = await tenantry.client.post(
        "/admin/tenants", content=chunks(), headers=tenantry.admin_headers()
    )
    assert streamed.status_code == 413, streamed.text
    assert not (tenantry.tenants_dir / "big.yaml").exists()
    # Under the limit the same tenant is accepted.
    accepted = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(config), headers=tenantry.admin_headers()
    )
    assert accepted.status_code == 201, accepted.text


async def test_deep_nesting_and_unconvertible_scalars_are_refused_with_their_line(tenantry):
    await tenantry.start(watch=False)
    admin = tenantry.admin_headers()
    deep = await tenantry.client.post(
        "/admin/tenants", content=deep_nesting("deep", "3:deep"), headers=admin
    )
    assert deep.status_code == 422, deep.text
    # The root mapping is depth 1 and from line 4 on each line nests one level
    # deeper (its key on line n is at depth n - 1): depth 51 is the key on line 52.
    assert deep.json()["errors"] == ["<admin upload>:52: nesting deeper than 50 levels"]

    for value, reason in [
        ("2001-13-45", "month must be in 1..12"),
        ("1" * 5000, "Exceeds the limit (4300 digits)"),
    ]:
        text = f'id: odd\nbot: {{token: "4:odd"}}\nname: {value}\n'
        odd = await tenantry.client.post("/admin/tenants", content=text, headers=admin)
        assert odd.status_code == 422, odd.text
        [error] = odd.json()["errors"]
        assert error.startswith("<admin upload>:3: invalid YAML: ") and reason in error, error


async def test_modest_anchors_aliases_and_merge_keys_still_load(tenantry, updates, bot_api, sample):
    config = tenantry.tenant_config("anchors")
    text = yaml.safe_dump(config, sort_keys=False) + textwrap.dedent("""\
        texts:
          welcome: &greeting "Hello from an anchor"
        features:
          sample:
            greeting: *greeting
          booking:
            kind: tables
            tables:
              - &table {id: t1, seats: 4, zone: hall}
              - {<<: *table, id: t2}
              - {<<: *table, id: t3, seats: 6}
            opening_hours: {mon: &weekday "12:00-23:00", tue: *weekday, wed: *weekday}
        """)
    tenantry.write_tenant("anchors", text)
    await tenantry.start(watch=False, plugins=[("sample", sample)])
    assert (await tenantry.wait_state("anchors", "running"))["state"] == "running"
    assert await answers(tenantry, bot_api, "anchors", config, updates) == "Hello from an anchor"
    assert await answers(tenantry, bot_api, "anchors", config, updates, "ping") == (
        "Hello from an anchor"
    )
    booking = tenantry.runtime.registry.get("anchors").settings["booking"]
    assert [(t.id, t.seats, t.zone) for t in booking.tables] == [
        ("t1", 4, "hall"),
        ("t2", 4, "hall"),
        ("t3", 6, "hall"),
    ]
    assert set(booking.opening_hours.values()) == {"12:00-23:00"}


async def test_validation_runs_off_the_event_loop(tenantry):
    """A check that takes a second blocks its worker thread, never ``/health``."""
    await tenantry.start(watch=False, plugins=[("fragile", FragilePlugin())])
    config = tenantry.tenant_config("slow", features={"fragile": {"think_seconds": 1.0}})
    upload = asyncio.create_task(
        tenantry.client.post(
            "/admin/tenants", content=yaml.safe_dump(config), headers=tenantry.admin_headers()
        )
    )
    await asyncio.sleep(0.2)  # the upload is being validated now
    health_seconds = []
    while not upload.done():
        started = time.monotonic()
        assert (await tenantry.client.get("/health")).status_code == 200
        health_seconds.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    assert (await upload).status_code == 201
    assert len(health_seconds) >= 3, health_seconds
    assert max(health_seconds) < 0.5, health_seconds


async def test_a_crashing_settings_check_answers_422_not_500(tenantry, caplog):
    await tenantry.start(watch=False, plugins=[("fragile", FragilePlugin())])
    config = tenantry.tenant_config("shaky", features={"fragile": {"explode": True}})
    response = await tenantry.client.post(
        "/admin/tenants", content=yaml.safe_dump(config), headers=tenantry.admin_headers()
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error.endswith("shaky.yaml: could not be loaded: RuntimeError: settings check crashed")
    # The refusal is logged once, at error with the crash's traceback (concealed,
    # so not as exc_info), where an invalid file's is a warning.
    [refusal] = [r for r in caplog.records if _event(r) == "tenant_file_rejected"]
    assert refusal.levelname == "ERROR" and not refusal.msg.get("exc_info")
    assert "RuntimeError: settings check crashed" in refusal.msg["traceback"]
    assert tenantry.runtime.registry.get("shaky") is None


# ------------------------------------------------------------ tenants folder


async def test_hostile_files_in_the_folder_are_rejected_and_the_rest_keeps_serving(
    tenantry, updates, bot_api, caplog
):
    glow = tenantry.add_tenant("glow", texts={"welcome": "glow v1"})
    await tenantry.start(watch=True, plugins=[("fragile", FragilePlugin())])
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "glow v1"

    (tenantry.tenants_dir / "loop.yaml").write_text(recursive_alias("loop", "2:loop"))
    (tenantry.tenants_dir / "bomb.yaml").write_text(alias_bomb("bomb", "1:bomb"))
    shaky = tenantry.tenant_config("shaky", features={"fragile": {"explode": True}})
    (tenantry.tenants_dir / "shaky.yaml").write_text(yaml.safe_dump(shaky))
    rejected = await rejected_files(tenantry, "loop.yaml", "bomb.yaml", "shaky.yaml")
    assert rejected["loop.yaml"] == [
        f"{tenantry.tenants_dir / 'loop.yaml'}:4: recursive alias *texts"
    ]
    assert rejected["bomb.yaml"] == [
        f"{tenantry.tenants_dir / 'bomb.yaml'}:8: alias *d expands the document to more than"
        " 20000 nodes"
    ]
    assert rejected["shaky.yaml"] == [
        f"{tenantry.tenants_dir / 'shaky.yaml'}: could not be loaded:"
        " RuntimeError: settings check crashed"
    ]
    assert {r.levelname for r in caplog.records if _rejection_of(r, "loop.yaml")} == {"WARNING"}
    assert not any(r.msg.get("exc_info") for r in caplog.records if _rejection_of(r, "loop.yaml"))
    assert any(
        r.levelname == "ERROR" and "settings check crashed" in r.msg.get("traceback", "")
        for r in caplog.records
        if _rejection_of(r, "shaky.yaml")
    )
    assert not [r for r in caplog.records if _event(r) == "tenant_sync_failed"]
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "glow v1"

    # The watcher keeps running: a later good edit of another file is picked up.
    tenantry.write_tenant("glow", yaml.safe_dump(dict(glow, texts={"welcome": "glow v2"})))
    deadline = asyncio.get_running_loop().time() + RELOAD_DEADLINE
    while await answers(tenantry, bot_api, "glow", glow, updates) != "glow v2":
        assert asyncio.get_running_loop().time() < deadline, "the edit was not picked up in 5 s"
        await asyncio.sleep(0.1)
    filin = tenantry.add_tenant("filin", texts={"welcome": "filin here"})
    await tenantry.wait_state("filin", "running", timeout=RELOAD_DEADLINE)
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "filin here"

    # A reload of a bad file through the admin API is refused the same way, and recorded.
    reload = await tenantry.client.post(
        "/admin/tenants/glow/reload", headers=tenantry.admin_headers()
    )
    assert reload.status_code == 200, reload.text
    tenantry.write_tenant("glow", recursive_alias("glow", glow["bot"]["token"]))
    refused = await tenantry.client.post(
        "/admin/tenants/glow/reload", headers=tenantry.admin_headers()
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        f"{tenantry.tenants_dir / 'glow.yaml'}:4: recursive alias *texts"
    ]
    assert str(tenantry.tenants_dir / "glow.yaml") in tenantry.runtime.registry.rejected
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "glow v2"

    # A restart with the bad files present starts every good tenant.
    tenantry.write_tenant("glow", yaml.safe_dump(dict(glow, texts={"welcome": "glow v3"})))
    await tenantry.stop()
    await tenantry.start(watch=False, plugins=[("fragile", FragilePlugin())])
    await tenantry.wait_state("glow", "running")
    await tenantry.wait_state("filin", "running")
    assert set(tenantry.runtime.registry.tenants) == {"glow", "filin"}
    assert {path.rsplit("/", 1)[1] for path in tenantry.runtime.registry.rejected} == {
        "loop.yaml",
        "bomb.yaml",
        "shaky.yaml",
    }
    await rejected_files(tenantry, "loop.yaml", "bomb.yaml", "shaky.yaml")
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "glow v3"
    assert await answers(tenantry, bot_api, "filin", filin, updates) == "filin here"


def _event(record) -> str | None:
    return record.msg.get("event") if isinstance(record.msg, dict) else None


def _rejection_of(record, name: str) -> bool:
    return _event(record) == "tenant_file_rejected" and record.msg["file"].endswith(f"/{name}")


async def test_a_file_over_the_size_limit_in_the_folder_is_rejected(tenantry, updates, bot_api):
    glow = tenantry.add_tenant("glow")
    big = tenantry.tenant_config("big")
    (tenantry.tenants_dir / "big.yaml").write_text(yaml.safe_dump(big) + "# pad\n" * 50_000)
    await tenantry.start(watch=False)
    size = (tenantry.tenants_dir / "big.yaml").stat().st_size
    rejected = await rejected_files(tenantry, "big.yaml")
    assert rejected["big.yaml"] == [
        f"{tenantry.tenants_dir / 'big.yaml'}: the file is {size} bytes;"
        " a tenant file is at most 262144 bytes"
    ]
    assert set(tenantry.runtime.registry.tenants) == {"glow"}
    assert await answers(tenantry, bot_api, "glow", glow, updates) == "Hello! I am the bot of Glow."


# ------------------------------------------------------------ tenantry check


def run_check(tmp_path) -> tuple[subprocess.CompletedProcess[str], object]:
    """``tenantry check`` of a folder with hostile, crashing and good files; the result and folder."""
    (tmp_path / "tenantry_fragile.py").write_text(
        textwrap.dedent('''\
            """A third-party plugin whose settings check crashes."""
            import msgspec
            from core import hookimpl

            class FragileSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
                explode: bool = False

                def __post_init__(self):
                    if self.explode:
                        raise RuntimeError("settings check crashed")

            @hookimpl
            def register_settings():
                return FragileSettings
            ''')
    )
    dist = tmp_path / "tenantry_fragile-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tenantry-fragile\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tenantry.plugins]\nfragile = tenantry_fragile\n")
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "bomb.yaml").write_text(alias_bomb("bomb", "1:bomb"))
    (tenants / "deep.yaml").write_text(deep_nesting("deep", "3:deep"))
    (tenants / "good.yaml").write_text('id: good\nbot: {token: "5:good"}\n')
    (tenants / "loop.yaml").write_text(recursive_alias("loop", "2:loop"))
    (tenants / "shaky.yaml").write_text(
        'id: shaky\nbot: {token: "6:shaky"}\nfeatures: {fragile: {explode: true}}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "check", "--tenants", str(tenants)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        },
        timeout=60,
    )
    return result, tenants


def test_check_reports_hostile_and_crashing_files_and_passes_the_good_one(tmp_path):
    result, tenants = run_check(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{tenants / 'bomb.yaml'}:8: alias *d expands the document to more than 20000 nodes",
        f"{tenants / 'deep.yaml'}:52: nesting deeper than 50 levels",
        f"{tenants / 'loop.yaml'}:4: recursive alias *texts",
        f"{tenants / 'shaky.yaml'}: could not be loaded: RuntimeError: settings check crashed",
    ]
    assert f"{tenants / 'good.yaml'}: ok" in result.stdout.splitlines()


def test_check_prints_only_the_good_files_on_stdout(tmp_path):
    result, tenants = run_check(tmp_path)
    assert result.stdout.splitlines() == [f"{tenants / 'good.yaml'}: ok"]
