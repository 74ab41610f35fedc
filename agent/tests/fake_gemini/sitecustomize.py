"""TEST ONLY: swap Gemini for a local fake in every process of the worker under test.

The integration tests start the worker exactly as the Deployment does
(``python -m voice_agent start``) and put this directory first on PYTHONPATH. Python imports
``sitecustomize`` at start-up in the worker, its forkserver and every job process; this one
waits for ``voice_agent.model`` to be imported and then replaces ``build_realtime_model``
(the single seam) with ``fake_realtime.build_fake_realtime_model``, which cannot reach Gemini.
Nothing else in the process is changed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

SEAM_MODULE = "voice_agent.model"


def _patch(module: ModuleType) -> None:
    from fake_realtime import build_fake_realtime_model

    module.build_realtime_model = build_fake_realtime_model  # type: ignore[attr-defined]
    module.FAKE_REALTIME_MODEL = True  # type: ignore[attr-defined]


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._wrapped.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._wrapped.exec_module(module)
        _patch(module)


class _SeamFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname != SEAM_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


if SEAM_MODULE in sys.modules:
    _patch(sys.modules[SEAM_MODULE])
else:
    sys.meta_path.insert(0, _SeamFinder())
