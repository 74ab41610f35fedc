"""The bootstrap's Pulumi.yaml against Pulumi's published project schema at the pinned SDK
version: the real CLI refuses a project file that fails it, before running anything."""

from __future__ import annotations

import hashlib
import re

import yaml

from tests.ci.project_schema import PROJECT_SCHEMA, ROOT, SCHEMAS, document_errors, project_file_errors


def test_the_vendored_schema_is_the_published_file_at_the_pinned_version():
    """SOURCES.md names the version and hash; the pin in requirements.txt is that version."""
    sources = (SCHEMAS / "SOURCES.md").read_text()
    pinned = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    row = next(line for line in sources.splitlines() if line.startswith("| `pulumi-project.json`"))
    assert f"`v{pinned}`" in row and f"sdk/v3@v{pinned}" in row, f"vendored schema is not the pinned SDK's ({pinned}): {row}"
    digest = hashlib.sha256(PROJECT_SCHEMA.read_bytes()).hexdigest()
    assert f"`{digest}`" in row, "tests/schemas/pulumi-project.json differs from the vendored file"


def test_the_bootstrap_project_file_is_valid_for_the_cli():
    assert project_file_errors(ROOT / "bootstrap" / "Pulumi.yaml") == []


def test_the_schema_refuses_what_the_cli_refuses():
    """Negative controls: a `number` config type, a key a declaration does not take, a misspelt
    declaration key, no name. Each passes a plain YAML parse and fails the CLI."""
    project = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.yaml").read_text())
    assert document_errors({**project, "config": {"x": {"type": "number"}}})
    assert any("#/config/x" in e for e in document_errors({**project, "config": {"x": {"type": "integer", "minimum": 1}}}))
    assert document_errors({**project, "config": {"x": {"type": "string", "descripton": "typo"}}})
    assert any("'name' is a required property" in e for e in document_errors({"runtime": "python"}))
