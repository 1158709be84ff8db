"""``tenantry tenants ...`` as ops run it: a subprocess talking to a live runtime over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import yaml

from core.testing.plugin import free_port


async def tenants_cli(tenantry, *args, token=None, timeout=60):
    """Run ``tenantry tenants <args>`` against the harness's runtime; (status, stdout, stderr).

    ``timeout``: seconds the command may take (a move copies a schema).

    Run without blocking the event loop: the runtime under test serves from it.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        "tenants",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "TENANTRY_ADMIN_URL": tenantry.url,
            "TENANTRY_ADMIN_TOKEN": tenantry.admin_token if token is None else token,
        },
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, stdout.decode(), stderr.decode()


def dumped(config):
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


async def test_apply_history_diff_rollback_show(tenantry, tmp_path):
    await tenantry.start(watch=False)
    edits = tmp_path / "edits"
    edits.mkdir()
    filin = tenantry.tenant_config("filin", texts={"welcome": "one"})
    path = edits / "filin.yaml"
    path.write_text(dumped(filin))

    status, out, err = await tenants_cli(tenantry, "apply", str(path))
    assert (status, err) == (0, "")
    assert out == f"{path}: created (version 1, running)\n"

    path.write_text(dumped(dict(filin, texts={"welcome": "two"})))
    status, out, _ = await tenants_cli(tenantry, "apply", str(path))
    assert (status, out) == (0, f"{path}: updated (version 2, running)\n")
    status, out, _ = await tenants_cli(tenantry, "apply", str(path))
    assert (status, out) == (0, f"{path}: unchanged (version 2, running)\n")

    status, out, _ = await tenants_cli(tenantry, "history", "filin")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "CHECKSUM", "ACTOR", "TIME", "(UTC)", "ACTION"]
    assert [row.split()[0] for row in rows] == ["2", "1"]
    assert all(row.split()[2] == "ops" and row.split()[-1] == "put" for row in rows)
    assert len(rows[0].split()[1]) == 12

    status, out, _ = await tenants_cli(tenantry, "diff", "filin")
    assert status == 0
    assert out.startswith("--- filin.yaml@1\n+++ filin.yaml@2\n")
    assert "\n-  welcome: one\n" in out and "\n+  welcome: two\n" in out
    assert [line for line in out.splitlines() if line[:1] in "+-"] == [
        "--- filin.yaml@1",
        "+++ filin.yaml@2",
        "-  welcome: one",
        "+  welcome: two",
    ]

    status, out, _ = await tenants_cli(tenantry, "rollback", "filin", "1")
    assert (status, out) == (0, "filin: version 3 is current, the text of version 1 (running)\n")
    status, shown, _ = await tenants_cli(tenantry, "show", "filin")
    assert status == 0
    assert "welcome: one" in shown and "welcome: two" not in shown
    # The bot token is an inline secret: shown masked, the rest as stored.
    assert yaml.safe_load(shown)["texts"] == {"welcome": "one"}
    assert filin["bot"]["token"] not in shown
    status, older, _ = await tenants_cli(tenantry, "show", "filin", "--version", "2")
    assert status == 0 and "welcome: two" in older
    status, out, _ = await tenants_cli(tenantry, "diff", "filin", "1", "3")
    assert (status, out) == (0, "")
    assert tenantry.runtime.registry.get("filin").spec.text == dumped(filin)

    status, out, _ = await tenants_cli(tenantry, "list")
    assert status == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "VERSION", "CHANGED"]
    assert row.split()[:4] == ["filin", "running", "3", "ops"]
    status, out, _ = await tenants_cli(tenantry, "list", "--json")
    [listed] = json.loads(out)["tenants"]
    assert (listed["id"], listed["version"], listed["changed_by"]) == ("filin", 3, "ops")

    for args, message in [
        (("show", "nobody"), "unknown tenant 'nobody'"),
        (("show", "filin", "--version", "9"), "tenant 'filin' has no version 9"),
        (("rollback", "filin", "9"), "tenant 'filin' has no version 9"),
        (
            ("history", "../filin"),
            "unknown tenant '../filin' (a tenant id matches ^[a-z][a-z0-9_]{0,39}$)",
        ),
    ]:
        status, out, err = await tenants_cli(tenantry, *args)
        assert (status, out) == (1, "")
        assert err == f"tenantry tenants {args[0]}: {message}\n"


async def test_apply_refuses_a_bad_file_and_applies_the_good_one(tenantry, tmp_path):
    await tenantry.start(watch=False)
    edits = tmp_path / "edits"
    edits.mkdir()
    good = edits / "glow.yaml"
    good.write_text(dumped(tenantry.tenant_config("glow")))
    bad = edits / "filin.yaml"
    bad.write_text(dumped(tenantry.tenant_config("filin", locale=12)))
    misnamed = edits / "other.yaml"
    misnamed.write_text(dumped(tenantry.tenant_config("shop")))
    locale_line = bad.read_text().splitlines().index("locale: 12") + 1

    status, out, err = await tenants_cli(tenantry, "apply", str(bad), str(good), str(misnamed))
    assert status == 1
    assert out == f"{good}: created (version 1, running)\n"
    assert err.splitlines() == [
        f"{bad}: refused: invalid tenant file",
        f"  {bad}:{locale_line}: locale: expected str, got 12",
        f"{misnamed}: refused: invalid tenant file",
        f"  {misnamed}:1: id: id 'shop' must match the file name 'other'",
    ]
    assert "Traceback" not in err
    assert tenantry.runtime.registry.get("glow").state == "running"
    assert tenantry.runtime.registry.get("filin") is None
    assert tenantry.runtime.registry.get("shop") is None
    history = await tenantry.client.get(
        "/admin/tenants/filin/history", headers=tenantry.admin_headers()
    )
    assert history.status_code == 404


async def test_tokens_and_unreachable_url(tenantry, tmp_path):
    scoped = tenantry.add_admin_token("acme", ["glow"])
    await tenantry.start(watch=False)
    shop = tmp_path / "shop.yaml"
    shop.write_text(dumped(tenantry.tenant_config("shop")))
    status, out, err = await tenants_cli(tenantry, "apply", str(shop), token=scoped)
    assert (status, out) == (1, "")
    assert err == (
        f"{shop}: refused: the admin token may not do this: token 'acme' may not manage "
        f"tenant 'shop' (its tenants: glow)\n"
    )
    assert tenantry.runtime.registry.get("shop") is None

    status, out, err = await tenants_cli(tenantry, "list", token="not-the-token")
    assert (status, out) == (2, "")
    assert err.startswith(f"tenantry tenants list: the admin token was refused by {tenantry.url}")
    status, _, err = await tenants_cli(tenantry, "list", token="")
    assert status == 2
    assert err == (
        "tenantry tenants list: no admin token: pass --token or set TENANTRY_ADMIN_TOKEN\n"
    )

    nowhere = f"http://127.0.0.1:{free_port()}"
    status, out, err = await tenants_cli(tenantry, "history", "glow", "--url", nowhere)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert err.startswith(f"tenantry tenants history: cannot connect to the admin API at {nowhere}")
    assert "Traceback" not in err
