"""Kubernetes resource quantities, as far as CPU and memory requests need them."""

from __future__ import annotations

import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^([0-9.]+)([A-Za-z]*)$")


def cpu_millicores(value: object) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.endswith("m"):
        return float(text[:-1])
    return float(text) * 1000


def memory_mib(value: object) -> float | None:
    if value is None:
        return None
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"not a memory quantity: {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    factor = _BINARY.get(unit) or _DECIMAL.get(unit) or 1
    return number * factor / 2**20
