"""A runtime's tenants folder mirrors the store: versions written back, removals deleted, a restart writes nothing."""

from __future__ import annotations

import msgspec
import yaml
from test_core_scaling import runtime_for
from test_core_store import wait_for

from core.runtime.store import TenantStore


async def test_a_folder_mirrors_the_store_and_a_restart_rewrites_nothing(
    tenantry, sample, tmp_path, monkeypatch
):
    glow = tenantry.add_tenant("glow")
    tenantry.add_tenant("filin")
    await tenantry.start(watch=False)
    admin = tenantry.admin_headers()
    # Another machine's runtime with an empty folder of its own: it learns the
    # tenants from the store and writes them there.
    folder = tmp_path / "elsewhere"
    folder.mkdir()

    def elsewhere():
        other = runtime_for(tenantry, sample)
        other.settings = msgspec.structs.replace(other.settings, tenants_dir=folder)
        return other

    other = elsewhere()
    await other.start()
    try:
        assert sorted(p.name for p in folder.iterdir()) == ["filin.yaml", "glow.yaml"]
        for name in ("filin.yaml", "glow.yaml"):
            assert (folder / name).read_text() == (tenantry.tenants_dir / name).read_text()
        records = await other.store.folder_files(other.registry.folder)
        assert sorted(records) == ["filin.yaml", "glow.yaml"]
    finally:
        await other.stop()
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    recorded: list[list[str]] = []
    record_files = TenantStore.record_files

    async def counting(self, folder_name, files):
        files = list(files)
        recorded.append([f.file_name for f in files])
        await record_files(self, folder_name, files)

    monkeypatch.setattr(TenantStore, "record_files", counting)

    again = elsewhere()
    await again.start()
    try:
        assert {t.id: t.state for t in again.registry.tenants.values()} == {
            "filin": "running",
            "glow": "running",
        }
        # The folder holds what the store holds: no file is written or recorded again.
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
        assert [names for names in recorded if names] == []

        # A change and a removal through the other runtime reach this folder.
        changed = dict(glow, texts={"welcome": "changed"})
        posted = await tenantry.client.post(
            "/admin/tenants", content=yaml.safe_dump(changed), headers=admin
        )
        assert posted.status_code == 201, posted.text
        await wait_for(lambda: "welcome: changed" in (folder / "glow.yaml").read_text())
        removed = await tenantry.client.delete("/admin/tenants/filin", headers=admin)
        assert removed.status_code == 200, removed.text
        await wait_for(lambda: not (folder / "filin.yaml").exists())
        await wait_for(lambda: again.registry.get("filin") is None)
        records = await again.store.folder_files(again.registry.folder)
        assert sorted(records) == ["glow.yaml"]
        assert records["glow.yaml"].checksum == again.registry.get("glow").source_hash
    finally:
        await again.stop()
