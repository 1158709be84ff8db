"""A plugin's settings check that crashes must not show what the file read from the environment."""

from __future__ import annotations

import msgspec
import pytest

from core import hookimpl
from core.config.loader import load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager

SECRET = "s3cr3t-code-from-the-environment"


class VaultSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A third party's settings whose check has a bug: it quotes the value it refuses."""

    code: str = ""

    def __post_init__(self) -> None:
        if self.code:
            raise RuntimeError(f"cannot use {self.code}")


class Vault:
    @hookimpl
    def register_settings(self) -> type[msgspec.Struct]:
        return VaultSettings


TENANT = """\
id: acme
name: Acme
bot: {token: "123456:acme-demo-token"}
storage: {schema: acme, redis_prefix: "acme:"}
features:
  vault:
    code: ${ACME_CODE}
"""


def test_a_crashing_settings_check_names_the_reference_in_the_error_and_the_log():
    pm = build_plugin_manager(entry_points=False, extra=[("vault", Vault())])
    with pytest.raises(ConfigError) as refused:
        load_tenant_text(TENANT, "tenants/acme.yaml", pm, env={"ACME_CODE": SECRET})
    [issue] = refused.value.issues
    assert issue.file == "tenants/acme.yaml"
    assert "could not be loaded: RuntimeError: cannot use ${ACME_CODE}" in issue.reason
    assert SECRET not in str(refused.value)
    # The traceback goes with the error, for the runtime's log (the plugin's
    # author needs it), with the reference in it too.
    trace = refused.value.trace
    assert "__post_init__" in trace and "cannot use ${ACME_CODE}" in trace
    assert SECRET not in trace
