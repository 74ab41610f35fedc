"""One declaration per setting (domain/declarations.py): Pulumi.yaml's config block and
docs/settings.md are what the declarations produce, every declaration lands on one field of the
typed settings, every bound holds at its edge, and no value of any setting ends in a traceback.

Guards against a setting declared in one place and forgotten in another (issue 30: a setting
lived in three or four places, 20 of them in no doc), and against a typed value that cannot be
parsed crashing the plan instead of naming the setting (issue 24: a maintenance time without a
zone).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, is_dataclass

import pytest
import yaml

from domain import declarations
from domain.config import _LANDS, _SECTIONS, parse_stack_config, read
from domain.declarations import BY_KEY, SETTINGS, config_block, project_file, settings_doc
from domain.settings import ConfigError, Problem, StackConfig
from domain.stackfiles import ROOT, load_stack_values, project_declarations

P = "gke-voice-agents:"
SECRETS = {P + "livekitApiKey": "k", P + "livekitApiSecret": "s"}
RAW = {**load_stack_values("dev").config, **SECRETS}


def parse(**overrides: str):
    return parse_stack_config("dev", {**RAW, **{(k if ":" in k else P + k): v for k, v in overrides.items()}},
                              tuple(SECRETS))


# --- what the declarations produce -------------------------------------------------------------

def test_the_committed_project_file_is_what_the_declarations_write():
    assert (ROOT / "Pulumi.yaml").read_text() == project_file(), "run: python -m domain.declarations"


def test_the_committed_settings_doc_is_what_the_declarations_write():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_doc(), "run: python -m domain.declarations"


def test_the_check_command_fails_on_a_stale_file(tmp_path, monkeypatch):
    """`python -m domain.declarations --check` is what CI can run; it must see a drifted file."""
    done = subprocess.run([sys.executable, "-m", "domain.declarations", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    stale = tmp_path / "settings.md"
    stale.write_text(settings_doc().replace("| `agentSize` |", "| `agentSise` |"))
    monkeypatch.setattr(declarations, "SETTINGS_DOC", stale)
    monkeypatch.setattr(declarations, "ROOT", tmp_path)
    monkeypatch.setattr(declarations, "PROJECT_FILE", ROOT / "Pulumi.yaml")
    assert declarations.main(["--check"]) == 1
    assert stale.read_text().count("agentSise") == 1, "--check must not write"


def test_the_project_file_declares_exactly_the_scalar_settings():
    declared = project_declarations()
    ours = {s.key: s for s in SETTINGS if s.ours}
    assert set(declared) == set(ours)
    for key, d in declared.items():
        s = ours[key]
        assert d["type"] == {"integer": "integer", "boolean": "boolean"}.get(s.kind, "string"), key
        assert d.get("default") == s.default or ("default" not in d and s.default is None), key
        assert bool(d.get("secret")) == s.secret, key


def test_the_settings_doc_has_one_row_per_setting():
    rows = [line.split("|")[1].strip().strip("`") for line in settings_doc().splitlines()
            if line.startswith("| `")]
    assert rows == [s.name for s in SETTINGS]


def test_numbers_are_strings_in_the_project_file():
    """Pulumi's project schema has no number type (tests/infra/test_project_files.py)."""
    block = yaml.safe_load("config:" + config_block().split("\nconfig:", 1)[1])["config"]
    numbers = [s.name for s in SETTINGS if s.kind == "number"]
    assert numbers and all(block[n]["type"] == "string" and isinstance(block[n]["default"], str) for n in numbers)


# --- where the values land ---------------------------------------------------------------------

def _leaves(cls: type, prefix: str = "") -> set[str]:
    found = set()
    for f in fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        found |= _leaves(_SECTIONS[path], path) if path in _SECTIONS else {path}
    return found


def test_every_typed_field_has_exactly_one_declaration():
    """A field no declaration fills would keep a code default a stack cannot change."""
    derived = {"stack", "livekit_api_key", "livekit_api_secret", "workload.model_prices"}
    leaves = _leaves(StackConfig)
    targets = [s.to for s in SETTINGS if s.to]
    assert len(targets) == len(set(targets)), "two declarations land on one field"
    assert set(targets) <= leaves, set(targets) - leaves
    assert leaves - set(targets) == derived


def test_every_setting_reaches_the_parsed_config():
    """Control for the mapping above: changing one value changes exactly its field."""
    cfg = parse(hpaScaleDownPodsPerPeriod="3", geminiConnectRetries="4", databaseRetainedBackups="9")
    assert (cfg.workload.hpa.scale_down_pods_per_period, cfg.workload.call.gemini_connect_retries,
            cfg.database.retained_backups) == (3, 4, 9)
    assert _LANDS["workload.hpa.scale_down_pods_per_period"] == "hpaScaleDownPodsPerPeriod"


# --- bounds at their edges ---------------------------------------------------------------------

BOUNDED = [s for s in SETTINGS if s.kind in ("integer", "number")]


@pytest.mark.parametrize("s", BOUNDED, ids=lambda s: s.name)
def test_every_bound_holds_at_its_edge(s):
    step = 1 if s.kind == "integer" else 0.01
    shown = (lambda x: str(int(x))) if s.kind == "integer" else str
    if s.low_open:
        assert read(s, shown(s.low))[1] is not None
        assert read(s, shown(s.low + step))[1] is None
    else:
        assert read(s, shown(s.low)) == ((int(s.low) if s.kind == "integer" else float(s.low)), None)
        below = read(s, shown(s.low - step))[1]
        assert below is not None and below.key == s.key
    assert read(s, shown(s.high))[1] is None
    above = read(s, shown(s.high + step))[1]
    assert isinstance(above, Problem) and above.key == s.key and f"{s.high}" in above.rule


def test_a_why_is_said_in_the_message():
    problem = read(BY_KEY[P + "registryRetentionDays"], "3")[1]
    assert str(problem) == (f"{P}registryRetentionDays = 3: must be from 7 to 3650 days (a week is the least that "
                            "leaves a rollback target, ten years the most anybody means)")


# --- never a traceback -------------------------------------------------------------------------

JUNK = ("", "x", "-1", "1e309", "nan", "{}", "[]", '{"a": 5}', "2026-01-03T02:00:00", "true")


@pytest.mark.parametrize("s", [s for s in SETTINGS if not s.secret], ids=lambda s: s.name)
def test_no_value_of_any_setting_ends_in_a_traceback(s):
    """Every value either parses or is one ConfigError naming the key; nothing else escapes."""
    for junk in JUNK:
        try:
            parse(**{s.key: junk})
        except ConfigError as err:
            assert err.problems, junk
            assert all(p.key.startswith((P, "gcp:")) for p in err.problems)


@pytest.mark.parametrize("key", ["maintenanceStartTime", "maintenanceEndTime"])
def test_a_maintenance_time_without_a_zone_is_a_config_error(key):
    """Issue 24: '2026-01-03T02:00:00' was compared with zoned times and crashed the plan."""
    with pytest.raises(ConfigError, match=rf"{key} = '2026-01-03T0.:00:00': must be an RFC 3339 time such as "
                                          r"2026-01-03T03:00:00Z, with its zone: add Z for UTC"):
        parse(**{key: {"maintenanceStartTime": "2026-01-03T02:00:00", "maintenanceEndTime": "2026-01-03T08:00:00"}[key]})


def test_the_same_time_with_its_zone_is_accepted():
    assert parse(maintenanceStartTime="2026-01-03T02:00:00+00:00").cluster.maintenance_start == "2026-01-03T02:00:00+00:00"


def test_an_exclusion_without_a_zone_is_a_config_error():
    with pytest.raises(ConfigError, match=r"maintenanceExclusions.launch.start = '2026-03-01T00:00:00': must be an RFC "
                                          r"3339 time .*with its zone"):
        parse(maintenanceExclusions='{"launch": {"start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00Z"}}')


def test_the_plan_says_so_with_exit_2_and_no_traceback(tmp_path):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".git", "agent", "out", ".tools", "__pycache__",
                                                               ".pytest_cache", "bootstrap"))
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  gke-voice-agents:maintenanceStartTime: 2026-01-03T02:00:00\n")
    done = subprocess.run([sys.executable, "-m", "tooling.plan", "--stack", "dev", "--out", str(tmp_path / "out")],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "maintenanceStartTime = '2026-01-03T02:00:00': must be an RFC 3339 time" in done.stderr
