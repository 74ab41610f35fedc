"""Every image the stack deploys from its own registry, and where it is built from.

One table, read by the program (which image each component runs, by digest when CI set one),
by the policy rule `registry-images-built-by-ci` (a component whose image no pipeline builds is
a plan error, not a Deployment that waits out Pulumi's timeout), by the deploy workflow's build
job (`python -m infra.images`, which builds, scans, pushes and signs each entry) and by the
workflow tests (deploy.yml and the pull-request build cover every entry).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from domain.stackfiles import ROOT, load_stack_values

if TYPE_CHECKING:  # the table is read by policy.manifests, which runs without the Pulumi SDK
    import pulumi


@dataclass(frozen=True)
class Image:
    name: str  # the repository path inside the stack's registry
    context: str  # docker build context, relative to the repository root
    dockerfile: str
    digest_setting: str  # the stack setting CI sets to the pushed digest
    component: str  # what runs it


IMAGES: dict[str, Image] = {
    # agentImageName's default (Pulumi.yaml); tests/ci checks the two agree.
    "agent": Image("voice-agent", "agent", "agent/Dockerfile", "agentImageDigest", "the agent Deployment (k8s/workload.py)"),
    "places": Image("places-mcp", "tools/places", "tools/places/Dockerfile", "placesImageDigest",
                    "the Places tool server (k8s/tool_server.py, placesToolEnabled)"),
}


def reference(registry: "pulumi.Input[str]", image: Image, digest: str, tag: str) -> "pulumi.Output[str]":
    """By digest when CI set one (the build it tested and signed), else by tag (immutable)."""
    import pulumi

    return pulumi.Output.concat(registry, "/", image.name, f"@{digest}" if digest else f":{tag}")


def built_names() -> set[str]:
    return {image.name for image in IMAGES.values()}


def targets(stacks: list[str], root: Path = ROOT) -> dict:
    """What the build job needs, from the committed stack files alone (no state, no secrets):
    each stack's registry URL and each image with its build context."""
    from infra.registry import registry_url

    registries = {}
    for stack in stacks:
        config = load_stack_values(stack, root).config
        registries[stack] = registry_url(config["gcp:project"], config["gcp:region"], stack)
    return {"registries": registries, "images": {key: asdict(image) for key, image in IMAGES.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.images", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", required=True, help="a stack whose registry the build signs for")
    args = parser.parse_args(argv)
    json.dump(targets(args.stack), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
