"""scripts/test.sh's two phases: while setup-kube.sh may still be building, a test that reaches
the control plane must fail saying which marker it lacks, whether or not the binaries exist."""

from __future__ import annotations

import re

import pytest

from tests.k8s import controlplane


def test_while_building_every_start_is_refused_naming_the_marker(monkeypatch):
    monkeypatch.setenv(controlplane.BUILDING_ENV, "1")
    reason = controlplane.unavailable(controlplane.SERVER)
    assert reason is not None and "marked `controlplane`" in reason
    with pytest.raises(FileNotFoundError, match="marked `controlplane`"):
        controlplane.ControlPlane(workdir=controlplane.ROOT / "out" / "never-started").start()


def test_after_the_build_only_missing_binaries_are_refused(monkeypatch, tmp_path):
    monkeypatch.delenv(controlplane.BUILDING_ENV, raising=False)
    monkeypatch.setattr(controlplane, "bin_dir", lambda: tmp_path)
    assert controlplane.unavailable(("etcd",)) == f"etcd not built under {tmp_path}: run `{controlplane.SETUP}`"
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    assert controlplane.unavailable(("etcd",)) is None


def test_the_suite_script_runs_the_marked_tests_only_after_the_build():
    script = (controlplane.ROOT / "scripts" / "test.sh").read_text()
    first = script.index('-m "not controlplane"')
    waited = script.index('wait "$kube_build"')
    assert re.search(rf"export {controlplane.BUILDING_ENV}=1", script[:first])
    assert script.index(f"unset {controlplane.BUILDING_ENV}") < waited < script.index("-m controlplane\n")
