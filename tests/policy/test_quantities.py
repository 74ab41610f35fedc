"""Kubernetes quantities as the rules read them (policy/quantities.py), one per suffix, against
the Kubernetes "Quantity" reference: binary suffixes are powers of 1024, decimal ones of 1000,
CPU "m" is a thousandth of a core."""

from __future__ import annotations

import pytest

from policy.quantities import cpu_millicores, memory_mib


@pytest.mark.parametrize(("text", "mib"), [
    ("1Ki", 1 / 1024), ("1Mi", 1), ("1Gi", 1024), ("1Ti", 1024 * 1024), ("1.5Gi", 1536),
    ("1k", 1000 / 2**20), ("1M", 10**6 / 2**20), ("1G", 10**9 / 2**20), ("1T", 10**12 / 2**20),
    ("1048576", 1), (" 512Mi ", 512), (2048, 2048 / 2**20),
])
def test_memory_suffixes(text, mib):
    assert memory_mib(text) == pytest.approx(mib, rel=1e-12)


@pytest.mark.parametrize("text", ["12 Mi", "Mi", "-1Mi", "1e3Mi"])
def test_what_is_not_a_memory_quantity_says_so(text):
    with pytest.raises(ValueError, match="not a memory quantity"):
        memory_mib(text)


@pytest.mark.parametrize(("text", "millicores"), [("250m", 250), ("1", 1000), ("0.5", 500), (2, 2000), (" 100m ", 100)])
def test_cpu_quantities(text, millicores):
    assert cpu_millicores(text) == millicores


def test_unset_is_none():
    assert memory_mib(None) is None and cpu_millicores(None) is None
