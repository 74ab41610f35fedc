"""Replays the shell blocks of docs/ci.md in order against a model of what a fresh project has.

The model tracks what the real tools would: which backend `pulumi login` selected (or
`PULUMI_BACKEND_URL` overrides for one command), which stacks exist on which backend, whether the
bootstrap has been applied there, and which shell variables hold which stack outputs. A command
that would fail on a fresh project (reading a stack output from a backend where the stack is not,
setting a key no program declares, deploying a URN the program never creates, naming a file that
does not exist) is a problem. A command the replay does not understand is a problem too, so the
page cannot drift outside what is checked.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
ASSIGN_OUTPUT = re.compile(r'^(\w+)="\$\(pulumi -C bootstrap stack output (\w+)(?: --json \| jq -r "\.(\$?\w+)")?\)"$')
ASSIGN_OTHER = re.compile(r'^(\w+)="\$\((gh api .*)\)"$')
FOR = re.compile(r"^for (\w+) in ([\w -]+); do$")


@dataclass
class Facts:
    """What exists in the repository and what the programs declare."""

    bootstrap_outputs: Mapping[str, Any]
    main_settings: set[str]  # keys declared in Pulumi.yaml `config`
    urns: Mapping[str, set[str]]  # stack -> URNs of its offline plan
    workflow_environments: set[str]
    environment_secrets: set[str]  # secrets read by jobs that declare an environment
    repository_secrets: set[str]  # secrets read by jobs without an environment
    job_names: set[str]


@dataclass
class Replay:
    facts: Facts
    problems: list[str] = field(default_factory=list)
    login: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    stacks: dict[str, set[str]] = field(default_factory=dict)  # backend -> stacks created there
    applied: set[str] = field(default_factory=set)  # backends holding the applied bootstrap
    exported: str | None = None

    # --- plumbing ------------------------------------------------------------------------------

    def fail(self, line: str, why: str) -> None:
        self.problems.append(f"{why}: `{line}`")

    def expand(self, text: str) -> str:
        for name, value in sorted(self.variables.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f"${{{name}}}", value).replace(f"${name}", value)
        return text

    def _backend(self, env_prefix: str | None) -> str | None:
        return env_prefix if env_prefix is not None else self.login

    def _bootstrap_ready(self, line: str) -> bool:
        if self.login not in self.applied:
            self.fail(line, f"the bootstrap stack is not on the current backend ({self.login}) at this point")
            return False
        return True

    def _output(self, line: str, name: str, key: str | None) -> str:
        outputs = self.facts.bootstrap_outputs
        if name not in outputs:
            self.fail(line, f"the bootstrap has no stack output {name}")
        elif key is not None and key not in outputs[name]:
            self.fail(line, f"stack output {name} has no entry {key}")
        self._bootstrap_ready(line)
        return f"<{name}{'.' + key if key else ''}>"

    # --- commands ------------------------------------------------------------------------------

    def run(self, line: str) -> None:
        if match := ASSIGN_OUTPUT.match(line):
            var, name, key = match.groups()
            self.variables[var] = self._output(line, name, self.expand(key) if key else None)
            return
        if match := ASSIGN_OTHER.match(line):
            self.variables[match.group(1)] = f"<{match.group(1)}>"
            return
        first = line.split(" | ")[0]
        # Inside double quotes bash turns `\$` into `$`; shlex keeps the backslash.
        try:
            words = [w.replace("\\$", "$") for w in shlex.split(self.expand(first))]
        except ValueError as error:
            self.fail(line, f"the replay cannot split this command ({error})")
            return
        env_backend = None
        if words and words[0].startswith("PULUMI_BACKEND_URL="):
            env_backend = words.pop(0).partition("=")[2]
        if not words:
            return
        handler = {"pulumi": self._pulumi, "git": self._git, "rm": self._rm, "gh": self._gh}.get(words[0])
        if handler is None:
            self.fail(line, "the replay does not know this command")
            return
        try:
            handler(line, words[1:], env_backend)
        except (ValueError, IndexError):  # a flag the command needs is missing, or has no value
            self.fail(line, "the replay cannot read this command's arguments (a flag or its value is missing)")

    def _pulumi(self, line: str, args: list[str], env_backend: str | None) -> None:
        bootstrap = args[:2] == ["-C", "bootstrap"]
        if bootstrap:
            args = args[2:]
        backend = self._backend(env_backend)
        command = args[:2] if args[:1] == ["stack"] or args[:1] == ["config"] else args[:1]
        if args[:1] == ["login"]:
            self.login = "local" if args[1:] == ["--local"] else args[1]
        elif command == ["stack", "init"]:
            self.stacks.setdefault(backend, set()).add(("bootstrap:" if bootstrap else "main:") + args[2])
        elif bootstrap and command == ["up"]:
            self._require_stack(line, backend, "bootstrap:ci")
            self.applied.add(backend)
        elif bootstrap and command in (["preview"], ["stack", "export"]):
            self._bootstrap_ready(line)
            if command == ["stack", "export"]:
                self.exported = args[args.index("--file") + 1]
        elif bootstrap and command == ["stack", "import"]:
            self._require_stack(line, backend, "bootstrap:ci")
            if self.exported != args[args.index("--file") + 1]:
                self.fail(line, "imports a file no earlier command exported")
            self.applied.add(backend)
        elif bootstrap and command == ["stack", "output"]:
            self._output(line, args[2], None)
        elif not bootstrap and command == ["config", "set"]:
            stack = args[args.index("--stack") + 1]
            self._require_stack(line, backend, f"main:{stack}")
            keys = [a for a in args[2:] if not a.startswith("--") and a != stack]
            if keys[0] not in self.facts.main_settings:
                self.fail(line, f"Pulumi.yaml declares no setting {keys[0]}")
        elif not bootstrap and command == ["up"]:
            self._main_up(line, args, backend)
        else:
            self.fail(line, "the replay does not know this pulumi command")

    def _require_stack(self, line: str, backend: str | None, stack: str) -> None:
        if stack not in self.stacks.get(backend, set()):
            self.fail(line, f"stack {stack} does not exist on backend {backend} at this point")

    def _main_up(self, line: str, args: list[str], backend: str | None) -> None:
        stack = args[args.index("--stack") + 1]
        self._require_stack(line, backend, f"main:{stack}")
        if "--policy-pack" not in args or "--policy-pack-config" not in args:
            self.fail(line, "every update runs the policy pack with its stack's config")
            return
        self._files(line, [args[args.index("--policy-pack") + 1], args[args.index("--policy-pack-config") + 1]])
        config = re.fullmatch(r"policy/(\w+)\.json", args[args.index("--policy-pack-config") + 1])
        urns = self.facts.urns.get(config.group(1) if config else "", set())
        for i, arg in enumerate(args):
            if arg == "--target" and args[i + 1] not in urns:
                self.fail(line, f"the offline plan has no resource {args[i + 1]}")

    def _files(self, line: str, paths: Iterable[str]) -> None:
        for path in paths:
            if not (ROOT / path).exists():
                self.fail(line, f"names {path}, which does not exist")

    def _git(self, line: str, args: list[str], _: str | None) -> None:
        if args[:1] != ["add"]:
            self.fail(line, "the replay does not know this git command")
        self._files(line, args[1:])

    def _rm(self, line: str, args: list[str], _: str | None) -> None:
        if self.exported is None or args != [f"bootstrap/{self.exported}"]:
            self.fail(line, "removes something other than the bootstrap's export (pulumi -C bootstrap writes it in bootstrap/)")

    def _gh(self, line: str, args: list[str], _: str | None) -> None:
        if args[:2] == ["secret", "set"]:
            name = args[2]
            env = args[args.index("--env") + 1] if "--env" in args else None
            if env is not None and env not in self.facts.workflow_environments:
                self.fail(line, f"no workflow job runs in environment {env}")
            wanted = self.facts.environment_secrets if env else self.facts.repository_secrets
            if name not in wanted:
                self.fail(line, f"no {'environment' if env else 'non-environment'} job reads secret {name}")
        elif args[:2] == ["api", "-X"]:
            path = args[3]
            if match := re.search(r"/environments/([\w.-]+)", path):
                if match.group(1) not in self.facts.workflow_environments:
                    self.fail(line, f"no workflow job runs in environment {match.group(1)}")
        elif args[:2] == ["variable", "set"]:
            pass  # only inside the output pipelines, whose source output is checked
        else:
            self.fail(line, "the replay does not know this gh command")
        if "--repo" in args and args[args.index("--repo") + 1] != self.variables.get("repo"):
            self.fail(line, "names a repository other than the one the bootstrap trusts")


def command_lines(markdown: str) -> list[str]:
    """The page's shell commands in order: continuations and pipelines joined, heredoc bodies and
    comments dropped, `for` loops unrolled."""
    lines: list[str] = []
    for block in BLOCK.findall(markdown):
        lines += _unroll(_logical_lines(block))
    return lines


def _logical_lines(block: str) -> list[str]:
    out: list[str] = []
    pending = ""
    heredoc_end = None
    for raw in block.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if raw.strip() == heredoc_end else heredoc_end
            continue
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if match := re.search(r"<<'?(\w+)'?", line):
            heredoc_end = match.group(1)
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
        elif line.endswith("|"):
            pending += line.strip() + " "
        elif line.strip() or pending:
            out.append((pending + line.strip()).strip())
            pending = ""
    return [line for line in out if line]


def _unroll(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = FOR.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        end = lines.index("done", i)
        var, values = match.group(1), match.group(2).split()
        for value in values:
            out += [re.sub(rf'\$\{{?{var}\}}?(?!\w)', value, line) for line in lines[i + 1:end]]
        i = end + 1
    return out


def replay(markdown: str, facts: Facts) -> list[str]:
    session = Replay(facts)
    for line in command_lines(markdown):
        session.run(line)
    return session.problems
