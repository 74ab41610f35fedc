"""Fixtures for the infra tests. GCP is never called: every evaluation runs under the Pulumi
mocks of tooling/mocks.py (through tooling.plan), which fake only the values GCP would compute."""

from __future__ import annotations

from typing import Any, Callable

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await


class ApplyProbe:
    """Runs assertions inside `Output.apply` and proves they ran.

    An apply on an unknown Output (a preview, or an input the mocks never resolved) is silently
    skipped, so an assertion placed there can pass without ever executing. Each check is
    counted when it runs; `verify()` awaits every checked Output and fails for any whose
    assertion never executed, naming it.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, pulumi.Output[Any]]] = []
        self.ran: list[str] = []

    def check(self, label: str, output: pulumi.Output[Any], assertion: Callable[[Any], None]) -> pulumi.Output[Any]:
        def run(value: Any) -> Any:
            assertion(value)
            self.ran.append(label)
            return value

        checked = output.apply(run)
        self._pending.append((label, checked))
        return checked

    def verify(self) -> None:
        for _, output in self._pending:
            _sync_await(output.future())
        never = [label for label, _ in self._pending if label not in self.ran]
        self._pending.clear()
        assert not never, f"apply assertions that never executed: {never}"


@pytest.fixture
def apply_probe():
    """Fails the test at teardown if any assertion registered with it did not run."""
    probe = ApplyProbe()
    yield probe
    probe.verify()
