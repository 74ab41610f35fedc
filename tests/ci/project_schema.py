"""Pulumi's own project-file schema (vendored, see tests/schemas/SOURCES.md), as the CLI applies it.

The CLI validates every Pulumi.yaml against this schema before it runs any command, so a file
that fails here makes `pulumi preview`/`up` fail for every user. Shared with the main project's
tests: `project_file_errors(path)` works for any Pulumi.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas"
PROJECT_SCHEMA = SCHEMAS / "pulumi-project.json"


def project_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(PROJECT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def document_errors(document: object) -> list[str]:
    """One line per violation: where (JSON pointer, as the CLI prints it) and why."""
    return [f"#/{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sorted(project_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def project_file_errors(path: Path) -> list[str]:
    return document_errors(yaml.safe_load(path.read_text()))
