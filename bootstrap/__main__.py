"""gke-voice-agents-bootstrap: the one-time GCP side of CI. Run by a person, never by CI."""

import sys
from pathlib import Path

# Pulumi runs this program from bootstrap/; the packages it shares with the main program
# (bootstrap, infra) are imported from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi  # noqa: E402

from bootstrap.config import load_bootstrap_config, read_pulumi_config  # noqa: E402
from bootstrap.program import build  # noqa: E402

for name, value in build(load_bootstrap_config(read_pulumi_config())).items():
    pulumi.export(name, value)
