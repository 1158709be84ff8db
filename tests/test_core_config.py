"""Tenant file validation: every kind of bad YAML gets file, line, field and reason."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import hypothesis
import pytest
from hypothesis import strategies as st

from core.config.loader import check_tenant_set, load_tenant_text
from core.config.model import ConfigError
from core.runtime.plugins import build_plugin_manager

GOOD = """\
id: filin
name: Filin
timezone: Europe/Moscow
locale: ru
bot:
  token: ${FILIN_TOKEN}
  webhook_secret: ${FILIN_SECRET:-}
  admins: [111]
storage:
  schema: filin
  redis_prefix: "filin:"
features:
  sample:
    greeting: hi
    limit: 7
"""


@pytest.fixture
def pm(sample):
    return build_plugin_manager(entry_points=False, extra=[("sample", sample)])


def load(text, pm, env=None, filename="tenants/filin.yaml"):
    return load_tenant_text(
        textwrap.dedent(text), filename, pm, {"FILIN_TOKEN": "123:abc"} if env is None else env
    )


def errors(text, pm, env=None, filename="tenants/filin.yaml"):
    with pytest.raises(ConfigError) as caught:
        load(text, pm, env, filename)
    return [str(issue) for issue in caught.value.issues]


def test_good_file_loads_with_env_and_defaults(pm):
    spec = load(GOOD, pm)
    assert spec.config.bot.token == "123:abc"
    assert spec.config.bot.webhook_secret == ""
    assert spec.config.schema == "filin"
    assert spec.features == ("core", "sample")
    assert spec.settings["sample"].limit == 7
    assert spec.machines["tickets"].initial == "open"


def test_default_schema_and_prefix_come_from_the_id(pm):
    spec = load("id: glow\nbot: {token: '1:x'}\n", pm, filename="tenants/glow.yaml")
    assert spec.config.schema == "tenant_glow"
    assert spec.config.redis_prefix == "glow:"


def test_wrong_type_names_file_line_and_field(pm):
    bad = GOOD.replace("limit: 7", 'limit: "x"')
    assert errors(bad, pm) == [
        'tenants/filin.yaml:15: features.sample.limit: expected int, got "x"'
    ]


def test_constraint_violation_is_explained(pm):
    bad = GOOD.replace("limit: 7", "limit: 2")
    assert errors(bad, pm) == [
        "tenants/filin.yaml:15: features.sample.limit: expected int >= 5, got 2"
    ]


def test_unknown_field_is_an_error(pm):
    bad = GOOD.replace("greeting: hi", "greting: hi")
    assert errors(bad, pm) == ["tenants/filin.yaml:14: features.sample.greting: unknown field"]
    bad_top = GOOD + "colour: red\n"
    assert errors(bad_top, pm) == ["tenants/filin.yaml:16: colour: unknown field"]


def test_unknown_plugin_is_an_error(pm):
    bad = GOOD + "  bookings: {}\n"
    [message] = errors(bad, pm)
    assert message.startswith("tenants/filin.yaml:16: features.bookings: unknown plugin 'bookings'")
    assert "sample" in message


def test_missing_env_var_is_an_error(pm):
    assert errors(GOOD, pm, env={}) == [
        "tenants/filin.yaml:6: bot.token: environment variable FILIN_TOKEN is not set"
    ]


def test_invalid_yaml_reports_the_line(pm):
    [message] = errors(GOOD.replace("name: Filin", "name: [Filin"), pm)
    assert message.startswith("tenants/filin.yaml:3: invalid YAML")


def test_bad_id_token_and_timezone(pm):
    assert errors(GOOD.replace("id: filin", "id: Filin!"), pm)[0].startswith(
        "tenants/filin.yaml:1: id: expected str matching"
    )
    assert errors(GOOD.replace("${FILIN_TOKEN}", "nocolon"), pm)[0].startswith(
        "tenants/filin.yaml:6: bot.token"
    )
    assert errors(GOOD.replace("Europe/Moscow", "Mars/Olympus"), pm) == [
        "tenants/filin.yaml:3: timezone: unknown time zone 'Mars/Olympus'"
    ]


def test_id_must_match_file_name(pm):
    assert errors(GOOD, pm, filename="tenants/other.yaml") == [
        "tenants/other.yaml:1: id: id 'filin' must match the file name 'other'"
    ]


def test_missing_required_field(pm):
    assert errors("id: filin\n", pm) == ["tenants/filin.yaml:1: bot: missing required field 'bot'"]


def test_status_machine_transition_to_unknown_state(pm):
    bad = GOOD + textwrap.dedent("""\
        statuses:
          tickets:
            initial: open
            states: [open, done]
            transitions:
              open: [done, archived]
        """)
    assert errors(bad, pm) == [
        "tenants/filin.yaml:21: statuses.tickets.transitions.open[1]: transition to unknown state 'archived'"
    ]


def test_status_machine_unreachable_state(pm):
    bad = GOOD + textwrap.dedent("""\
        statuses:
          tickets:
            initial: open
            states: [open, done, limbo]
            transitions:
              open: [done]
        """)
    assert errors(bad, pm) == [
        "tenants/filin.yaml:19: statuses.tickets.states: state 'limbo' is unreachable from 'open'"
    ]


def test_status_machine_for_unknown_entity_and_bad_shape(pm):
    bad = GOOD + "statuses:\n  orders: {initial: a, transitions: {}}\n"
    [message] = errors(bad, pm)
    assert message.startswith(
        "tenants/filin.yaml:17: statuses.orders: no entity 'orders' has statuses"
    )
    shape = (
        GOOD
        + "statuses:\n  tickets:\n    initial: open\n    transitions: {open: [{to: done, role: admin}]}\n"
    )
    assert errors(shape, pm) == [
        "tenants/filin.yaml:19: statuses.tickets.transitions.open[0].role: unknown field"
    ]


def test_renamed_state_must_be_gone_and_target_known(pm):
    bad = GOOD + textwrap.dedent("""\
        statuses:
          tickets:
            initial: open
            transitions: {open: [done]}
            renamed: {open: fresh, new: nowhere}
        """)
    assert sorted(errors(bad, pm)) == [
        "tenants/filin.yaml:20: statuses.tickets.renamed.new: renamed to unknown state 'nowhere'",
        "tenants/filin.yaml:20: statuses.tickets.renamed.open: renamed state 'open' is still in states",
        "tenants/filin.yaml:20: statuses.tickets.renamed.open: renamed to unknown state 'fresh'",
    ]


def test_several_problems_are_reported_together(pm):
    bad = GOOD.replace("limit: 7", "limit: 1") + "  nope: {}\n"
    assert len(errors(bad, pm)) == 2


def test_clashing_tenants(pm):
    env = {"FILIN_TOKEN": "123:abc"}
    filin = load(GOOD, pm, env)
    # Each file reads its own namespace of environment variables (TWIN_*, NEST_*...).
    twin = load(
        GOOD.replace("id: filin", "id: twin").replace("FILIN_", "TWIN_"),
        pm,
        {"TWIN_TOKEN": "123:abc"},
        "tenants/twin.yaml",
    )
    clashes = [str(i) for i in check_tenant_set([filin, twin])]
    assert (
        "tenants/twin.yaml: storage.schema: schema 'filin' is already used by tenants/filin.yaml"
        in clashes
    )
    assert any("Redis prefix 'filin:' overlaps 'filin:'" in c for c in clashes)
    nested = load(
        GOOD.replace("id: filin", "id: nest")
        .replace("FILIN_", "NEST_")
        .replace('"filin:"', '"filin:x:"')
        .replace("schema: filin", "schema: nest"),
        pm,
        {"NEST_TOKEN": "125:abc"},
        "tenants/nest.yaml",
    )
    assert [str(i) for i in check_tenant_set([filin, nested])] == [
        "tenants/nest.yaml: storage.redis_prefix: Redis prefix 'filin:x:' overlaps 'filin:' of tenants/filin.yaml"
    ]
    same_bot = load(
        GOOD.replace("id: filin", "id: other")
        .replace("FILIN_", "OTHER_")
        .replace("schema: filin", "schema: other")
        .replace('"filin:"', '"other:"'),
        pm,
        {"OTHER_TOKEN": "123:abc"},
        "tenants/other.yaml",
    )
    assert [str(i) for i in check_tenant_set([filin, same_bot])] == [
        "tenants/other.yaml: bot.token: bot 123 is already served for tenants/filin.yaml"
    ]
    duplicate = [str(i) for i in check_tenant_set([filin, filin])]
    assert duplicate[0].startswith("tenants/filin.yaml: id: duplicate tenant id 'filin'")


def test_tenantry_check_cli_prints_errors_not_tracebacks(tmp_path):
    (tmp_path / "filin.yaml").write_text(
        "id: filin\nbot:\n  token: '1:x'\n  mode: carrier-pigeon\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "check", "--tenants", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "filin.yaml:4: bot.mode: expected str matching regex" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_command_prints_json_schema_with_plugin_settings():
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(result.stdout)
    assert schema["title"] == "Tenantry tenant file"
    assert set(schema["required"]) == {"id", "bot"}
    assert "booking" in schema["properties"]["features"]["properties"]
    assert schema["properties"]["bot"] == {"$ref": "#/$defs/BotConfig"}


@hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
@hypothesis.given(
    st.lists(st.text(alphabet="ab:", min_size=1, max_size=5), min_size=1, max_size=25)
)
def test_overlapping_redis_prefixes_are_all_found_as_comparing_every_pair_would(prefixes):
    from core.config.loader import _Prefixes

    seen = _Prefixes()
    earlier: list[tuple[str, str]] = []
    for number, prefix in enumerate(prefixes):
        expected = [(q, s) for q, s in earlier if prefix.startswith(q) or q.startswith(prefix)]
        assert seen.overlapping(prefix) == expected
        seen.add(prefix, f"t{number}.yaml")
        earlier.append((prefix, f"t{number}.yaml"))


def test_an_overlong_rate_is_refused_at_once(pm):
    # limits' parser is quadratic in what it cannot read: 16 KB took seconds.
    text = 'id: filin\nbot: {token: "1:x"}\nlimits:\n  api_writes: "1' + " " * 16000 + 'x"\n'
    started = time.monotonic()
    [problem] = errors(text, pm)
    assert time.monotonic() - started < 0.5
    assert problem.startswith(
        "tenants/filin.yaml:4: limits.api_writes: expected str of length <= 100"
    )
