"""Mutation run over the code the suite claims to guard: how many small, realistic bugs the tests catch.

A benchmark, not part of .ci/run (a full run takes hours on 2 vCPUs). For each module below it
builds single-site mutants from the module's syntax tree, writes each into a private copy of the
repository (a temp dir; the working tree is never touched), runs only the test files mapped to
that module, in the module's own venv, with `-x`, and counts the mutant killed when they fail or
time out (a few times the clean run). It prints every survivor (file:line and the mutation), one
line per module, and ends with ONE JSON line: {"mutants": N, "killed": N, "score": F}.

Mutations (one at a time, expression-level, so the file still parses):
  comparison   <  <=  >  >=  ==  !=  in  is   moved across the boundary and negated
  number       int +-1; float +- one step of its last significant digit (0.7 -> 0.71 / 0.69)
  boolean      and <-> or; `not x` -> x; True <-> False; `if c:` -> `if not c:`
  arithmetic   + <-> -, * <-> /
  return       `return X` -> `return None`
  literal set  one constant removed from a set/tuple/list/frozenset of constants
Strings in messages (f-strings), docstrings and annotations are left alone: what the tests must
guard is behaviour, not wording.

Equivalent mutants (a change no input can observe) are suppressed where they are, as mutmut does:
a line ending in `# pragma: no mutate: <why>`. The reason is required (a pragma without one stops
the run). Suppressed mutants stay in the pool a sample is drawn from (a suppression does not
change which mutants a seed draws, so runs before and after compare), and a drawn one is printed
as SUPPRESSED with its reason and left out of N; `--list` prints every suppressed line. Prefer
removing the equivalence (a tolerance nothing needs, a branch that cannot be taken) to
suppressing it.

    .venv/bin/python bench/mutation.py --sample 150 --seed 1          # sampled over every module
    .venv/bin/python bench/mutation.py --module policy/rules/workload.py --sample 40
    .venv/bin/python bench/mutation.py --list                          # mutants per module, no run

Each module names its venv (infra `.venv`, agent `agent/.venv`, tool server `tools/places/.venv`);
a module whose venv is missing is reported and counted as not run, never as killed.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
# The tree whose tests and modules are measured: the working tree, or a --rev checked out (main()).
_SOURCE = ROOT


@dataclass(frozen=True)
class Suite:
    """Where a module's tests run: the venv's python and the working directory (repo-relative)."""

    python: str
    cwd: str


INFRA = Suite(".venv/bin/python", ".")
AGENT = Suite("agent/.venv/bin/python", "agent")
PLACES = Suite("tools/places/.venv/bin/python", "tools/places")
VENVS = (".venv", "agent/.venv", "tools/places/.venv")

_POLICY = ("tests/policy/test_rules.py", "tests/policy/test_rule_edges.py")


@dataclass(frozen=True)
class Target:
    """A module under mutation and the fast tests that guard it (paths relative to the suite's cwd)."""

    module: str  # repo-relative
    suite: Suite
    tests: tuple[str, ...]


def _existing(*tests: str, cwd: str = ".") -> tuple[str, ...]:
    """The mapped tests. Files missing from the tree under test (an older --rev) are dropped when
    the run starts, so one mapping measures before and after a test file arrives."""
    return tests


def _agent_unit_tests(module: str, *also: str) -> tuple[str, ...]:
    """agent/tests files that import voice_agent.<module> and are not integration tests, plus `also`."""
    dotted = f"voice_agent.{module}"
    package, _, name = dotted.rpartition(".")
    imports = (f"import {dotted}", f"from {dotted} import", f"from {package} import {name}")
    found = []
    for path in sorted((_SOURCE / "agent" / "tests").glob("test_*.py")):
        text = path.read_text()
        integration = any(isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
                          and "integration" in ast.unparse(node.value) for node in ast.parse(text).body)
        if any(i in text for i in imports) and not integration:
            found.append(f"tests/{path.name}")
    return _existing(*dict.fromkeys([*found, *also]), cwd="agent")


TARGETS: tuple[Target, ...] = (
    Target("policy/engine.py", INFRA, _existing("tests/policy/test_engine.py", "tests/policy/test_rules.py")),
    Target("policy/quantities.py", INFRA, _existing("tests/policy/test_quantities.py", "tests/policy/test_boundaries_workload.py",
                                                    *_POLICY)),
    Target("policy/rules/base.py", INFRA, _existing("tests/policy/test_engine.py", "tests/policy/test_boundaries_workload.py",
                                                    "tests/policy/test_boundaries_cluster.py", "tests/policy/test_rules.py",
                                                    "tests/policy/test_pack.py")),
    Target("policy/rules/cluster.py", INFRA, _existing("tests/policy/test_boundaries_cluster.py", *_POLICY)),
    Target("policy/rules/network.py", INFRA, _existing("tests/policy/test_boundaries_cluster.py", *_POLICY)),
    Target("policy/rules/registry.py", INFRA, _existing("tests/policy/test_boundaries_cluster.py", *_POLICY)),
    Target("policy/rules/database.py", INFRA, _existing("tests/policy/test_rules_database.py",
                                                        "tests/policy/test_boundaries_database.py")),
    Target("policy/rules/secrets.py", INFRA, _existing("tests/policy/test_boundaries_secrets.py",
                                                       "tests/policy/test_rules_secrets.py")),
    Target("policy/rules/workload.py", INFRA, _existing("tests/policy/test_boundaries_workload.py", *_POLICY)),
    # Rewritten by another helper as access-closure rules (issue 29's note); mapped all the same.
    Target("policy/rules/identity.py", INFRA, _existing("tests/policy/test_rules_tools.py", "tests/policy/test_rules.py")),
    Target("policy/rules/tools.py", INFRA, _existing("tests/policy/test_rules_tools.py")),
    Target("domain/config.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/infra/test_config.py",
                                               "tests/k8s/test_config_errors.py")),
    Target("domain/database_rules.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/infra/test_database.py")),
    Target("domain/maintenance.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/infra/test_hardening.py")),
    Target("domain/cost.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/infra/test_cost.py",
                                             "tests/infra/test_fixed_cost.py")),
    Target("domain/capacity.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/k8s/test_capacity.py",
                                               "tests/k8s/test_sizes.py", "tests/k8s/test_config_errors.py")),
    Target("k8s/egress.py", INFRA, _existing("tests/k8s/test_egress.py", "tests/k8s/test_workload.py")),
    # The agent's unit tests are found by what they import (new unit test files join without an
    # edit here); its integration tests start a LiveKit server and a worker (minutes each) and are
    # left out, except the recovery store's, which need only a local PostgreSQL (seconds).
    Target("agent/voice_agent/admission.py", AGENT, _agent_unit_tests("admission")),
    Target("agent/voice_agent/readiness.py", AGENT, _agent_unit_tests("readiness")),
    Target("agent/voice_agent/privacy.py", AGENT, _agent_unit_tests("privacy")),
    Target("agent/voice_agent/recovery/store.py", AGENT, _agent_unit_tests("recovery.store", "tests/test_recovery_store.py")),
    # The tool server's checks of its callers' tokens (audience, issuer, expiry, principal).
    Target("tools/places/places_mcp/caller_auth.py", PLACES, _existing("tests/test_caller_auth_ready.py",
                                                                        "tests/test_caller_auth.py", cwd="tools/places")),
    # Whether a caller's pod still exists (TokenReview), and readiness that knows a search can work.
    Target("tools/places/places_mcp/token_review.py", PLACES, _existing("tests/test_token_review.py", cwd="tools/places")),
    # The access closures (issue 26) and the workload rules split out of workload.py (issue 30).
    Target("policy/rules/access.py", INFRA, _existing("tests/policy/test_access_gcp.py", "tests/policy/test_access_k8s.py")),
    Target("policy/rules/access_gcp.py", INFRA, _existing("tests/policy/test_access_gcp.py")),
    Target("policy/rules/access_k8s.py", INFRA, _existing("tests/policy/test_access_k8s.py")),
    Target("policy/rules/agent_timing.py", INFRA, _existing("tests/policy/test_boundaries_workload.py", *_POLICY)),
    Target("policy/rules/agent_scaling.py", INFRA, _existing("tests/policy/test_boundaries_workload.py", *_POLICY)),
    # The rest of policy/: the agent's pod as the rules read it (with the framework's defaults for
    # unset fields), the rules over plain manifests, and the CrossGuard adapters.
    Target("policy/rules/agent_pod.py", INFRA, _existing("tests/policy/test_boundaries_workload.py",
                                                         "tests/policy/test_manifests_any_worker.py", *_POLICY)),
    Target("policy/manifests.py", INFRA, _existing("tests/policy/test_manifests_any_worker.py",
                                                   "tests/policy/test_manifests_cli.py")),
    Target("policy/pack.py", INFRA, _existing("tests/policy/test_pack.py")),
    # The rest of the config loader: each setting's own checks (the declarations table), the
    # stack files read as the CLI would, the typed values' vocabulary, and the cross-setting rules
    # beside their domains (stages sharing a LiveKit project, the Gemini location, pod sizes).
    # the crash-recovery settings' bounds are tested beside the database they size
    Target("domain/declarations.py", INFRA, _existing("tests/infra/test_boundaries_config.py",
                                                     "tests/infra/test_declarations.py", "tests/k8s/test_config_errors.py",
                                                     "tests/infra/test_database.py")),
    Target("domain/stackfiles.py", INFRA, _existing("tests/infra/test_stack_keys.py", "tests/infra/test_config.py")),
    Target("domain/settings.py", INFRA, _existing("tests/infra/test_boundaries_config.py", "tests/k8s/test_settings.py",
                                                 "tests/k8s/test_config_errors.py")),
    Target("domain/stages.py", INFRA, _existing("tests/infra/test_stages.py")),
    Target("domain/vertex_locations.py", INFRA, _existing("tests/infra/test_vertex_locations.py",
                                                         "tests/infra/test_boundaries_config.py")),
    Target("domain/sizes.py", INFRA, _existing("tests/k8s/test_sizes.py", "tests/infra/test_boundaries_config.py",
                                              "tests/k8s/test_capacity.py")),
)


# ------------------------------------------------------------------------------------------------
# Mutants


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    start: tuple[int, int]  # (line, col) of the replaced source, 1-based line, 0-based col
    end: tuple[int, int]
    replacement: str
    description: str

    @property
    def name(self) -> str:
        """file:line:column: mutation, as survivors are printed (and read back by --survivors-of)."""
        return f"{self.module}:{self.line}:{self.start[1]}: {self.description}"

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for text in lines:
            offsets.append(offsets[-1] + len(text.encode()))
        raw = source.encode()
        a = offsets[self.start[0] - 1] + self.start[1]
        b = offsets[self.end[0] - 1] + self.end[1]
        return (raw[:a] + self.replacement.encode() + raw[b:]).decode()


_FLIP_COMPARE: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE), ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
_FLIP_BINOP: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_OP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
            ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
            ast.Div: "/", ast.And: "and", ast.Or: "or"}


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings (message wording)."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                mark(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs, node.args.vararg, node.args.kwarg]:
                if arg is not None:
                    mark(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.JoinedStr):
            mark(node)
    return skip


def _float_step(value: float) -> float:
    if value == 0:
        return 0.01
    return 10 ** (math.floor(math.log10(abs(value))) - 1)


def _span(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
    return (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)


# mutmut's marker, with the reason after a colon: `# pragma: no mutate: <why it is equivalent>`.
_PRAGMA = re.compile(r"#\s*pragma:\s*no mutate\b:?\s*(.*)$")


def suppressions(module: str, source: str) -> dict[int, str]:
    """{line: reason} of the module's `# pragma: no mutate` comments (real comments only, never a
    string that contains the words). A pragma without a reason is an error naming its line."""
    found: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and (match := _PRAGMA.search(token.string)):
            reason = match.group(1).strip()
            if not reason:
                raise SystemExit(f"{module}:{token.start[0]}: `# pragma: no mutate` needs its reason after a colon "
                                 "(why no input can tell the mutant from the code)")
            found[token.start[0]] = reason
    return found


def suppressed_of(module: str, source: str) -> list[Mutant]:
    """The module's mutants on `# pragma: no mutate` lines."""
    quiet = suppressions(module, source)
    return [m for m in mutants_of(module, source) if m.line in quiet]


def mutants_of(module: str, source: str) -> list[Mutant]:
    """Every mutant of the module, suppressed ones included (they are drawn, then set aside)."""
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    found: list[Mutant] = []
    lines = source.splitlines()

    def text(node: ast.AST) -> str:
        return ast.get_source_segment(source, node) or ast.unparse(node)

    def add(node: ast.AST, new: str, what: str, *, paren: bool = True) -> None:
        start, end = _span(node)
        shown = text(node).replace("\n", " ")
        shown = shown if len(shown) <= 70 else shown[:67] + "..."
        found.append(Mutant(module, node.lineno, start, end, f"({new})" if paren else new, f"{what} in `{shown}`"))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new_op in _FLIP_COMPARE.get(type(op), ()):
                    ops = list(node.ops)
                    ops[i] = new_op()
                    mutated = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                    add(node, ast.unparse(mutated), f"'{_OP_TEXT[type(op)]}' -> '{_OP_TEXT[new_op]}'")
        elif isinstance(node, ast.BinOp) and type(node.op) in _FLIP_BINOP:
            new_op = _FLIP_BINOP[type(node.op)]
            add(node, ast.unparse(ast.BinOp(node.left, new_op(), node.right)),
                f"'{_OP_TEXT[type(node.op)]}' -> '{_OP_TEXT[new_op]}'")
        elif isinstance(node, ast.BoolOp):
            new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
            add(node, ast.unparse(ast.BoolOp(new_op(), node.values)), f"'{_OP_TEXT[type(node.op)]}' -> '{_OP_TEXT[new_op]}'")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, text(node.operand), "'not' removed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            add(node, str(not node.value), f"{node.value} -> {not node.value}", paren=False)
        elif isinstance(node, ast.Constant) and isinstance(node.value, int):
            for delta in (1, -1):
                add(node, repr(node.value + delta), f"{node.value} -> {node.value + delta}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, float):
            step = _float_step(node.value)
            for delta in (step, -step):
                new = float(f"{node.value + delta:.12g}")
                add(node, repr(new), f"{node.value!r} -> {new!r}")
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            add(node, "return None", "return value -> None", paren=False)
        elif isinstance(node, ast.If):
            add(node.test, f"not ({text(node.test)})", "condition negated")
        if isinstance(node, (ast.Set, ast.Tuple, ast.List)) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) for e in node.elts) and id(node) not in skip:
            for i, element in enumerate(node.elts):
                rest = [text(e) for j, e in enumerate(node.elts) if j != i]
                if isinstance(node, ast.Set):
                    new = "{" + ", ".join(rest) + "}"
                elif isinstance(node, ast.List):
                    new = "[" + ", ".join(rest) + "]"
                else:
                    new = "(" + ", ".join(rest) + ("," if len(rest) == 1 else "") + ")"
                add(node, new, f"{text(element)} removed from the literal", paren=False)
    # Mutants whose text is the original (e.g. `not` on a constant) are no mutants.
    unique = {}
    for m in found:
        if m.apply(source) != source:
            unique.setdefault((m.start, m.end, m.replacement), m)
    return sorted(unique.values(), key=lambda m: (m.line, m.start, m.description))


# ------------------------------------------------------------------------------------------------
# Running


@dataclass
class Result:
    module: str
    mutants: int = 0
    killed: int = 0
    survivors: list[Mutant] = field(default_factory=list)
    skipped: str = ""


def _export_rev(rev: str, dest: Path) -> Path:
    """A git revision's files (`git archive`), with the working tree's venvs and tools linked in."""
    tree = dest / "rev"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for linked in (*VENVS, ".tools"):
        real = ROOT / linked
        if real.exists() and not (tree / linked).exists():
            (tree / linked).symlink_to(real.resolve(), target_is_directory=True)
    return tree


def _copy_tree(dest: Path, source: Path | None = None) -> Path:
    """The repository without git, venvs, caches and outputs; venvs are linked to the real ones."""
    source = source or ROOT
    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(source)
        dropped = {n for n in names if n in ("__pycache__", ".git", ".pytest_cache", "out", "node_modules")}
        dropped |= {n for n in names if (rel / n).as_posix() in VENVS}
        return dropped

    tree = dest
    shutil.copytree(source, tree, symlinks=True, ignore=ignore)
    for venv in VENVS:
        real = ROOT / venv
        if real.exists() and not (tree / venv).exists():
            (tree / venv).symlink_to(real.resolve(), target_is_directory=True)
    return tree


def _run_tests(tree: Path, target: Target, timeout: float) -> tuple[int, float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        done = subprocess.run([str(tree / target.suite.python), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               *target.tests], cwd=tree / target.suite.cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = -1
    return code, time.monotonic() - start


def run_target(tree: Path, target: Target, mutants: Sequence[Mutant], *, out=sys.stdout,
               timeout_factor: float = 4.0) -> Result:
    result = Result(target.module)
    if not (ROOT / target.suite.python).exists():
        result.skipped = f"venv {target.suite.python} missing"
        return result
    target = replace(target, tests=tuple(t for t in target.tests if (tree / target.suite.cwd / t).exists()))
    if not target.tests:
        result.skipped = "no mapped test file exists"
        return result
    if not mutants:
        return result
    code, clean = _run_tests(tree, target, timeout=1800)
    if code != 0:
        result.skipped = f"mapped tests fail without a mutant (exit {code}): fix them first"
        return result
    timeout = max(timeout_factor * clean, clean + 30)
    path = tree / target.module
    original = path.read_text()
    try:
        for mutant in mutants:
            path.write_text(mutant.apply(original))
            code, _ = _run_tests(tree, target, timeout)
            result.mutants += 1
            if code == 0:
                result.survivors.append(mutant)
                print(f"SURVIVED {mutant.name}", file=out, flush=True)
            else:
                result.killed += 1
    finally:
        path.write_text(original)
    return result


def _select(modules: Sequence[str]) -> list[Target]:
    if not modules:
        return list(TARGETS)
    chosen = [t for t in TARGETS if any(t.module == m or t.module.startswith(m.rstrip("/") + "/") for m in modules)]
    unknown = [m for m in modules if not any(t.module == m or t.module.startswith(m.rstrip("/") + "/") for t in TARGETS)]
    if unknown:
        raise SystemExit(f"--module {', '.join(unknown)}: not a mapped module; mapped: "
                         + ", ".join(t.module for t in TARGETS))
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", default=[], help="a mapped module or folder (repeatable)")
    parser.add_argument("--sample", type=int, default=0, help="mutants drawn at random over the chosen modules (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--list", action="store_true", help="count the mutants per module and stop")
    parser.add_argument("--survivors-of", type=Path, metavar="LOG",
                        help="run only the mutants an earlier run's output names as SURVIVED (after adding tests: a "
                             "mutant killed before stays killed, as the mapped tests only grow)")
    parser.add_argument("--rev", help="measure this git revision's modules and tests (e.g. main) instead of the "
                                      "working tree")
    parser.add_argument("--jobs", type=int, default=1, help="modules run side by side, each in its own copy")
    args = parser.parse_args(argv)

    global _SOURCE, TARGETS
    scratch = tempfile.TemporaryDirectory(prefix="mutation-")
    if args.rev:
        _SOURCE = _export_rev(args.rev, Path(scratch.name))
    targets = _select(args.module)
    # With --survivors-of the sample is drawn over every module, as the earlier run drew it, and
    # only then narrowed to --module.
    drawn = list(TARGETS) if args.survivors_of else targets
    sources = {t.module: (_SOURCE / t.module).read_text() for t in drawn}
    every = {t.module: mutants_of(t.module, sources[t.module]) for t in drawn}
    pragmas = {t.module: suppressions(t.module, sources[t.module]) for t in drawn}
    total = sum(len(every[t.module]) for t in targets)
    n_quiet = sum(1 for t in targets for m in every[t.module] if m.line in pragmas[t.module])
    if args.list:
        for t in targets:
            quiet = sum(1 for m in every[t.module] if m.line in pragmas[t.module])
            print(f"{t.module}: {len(every[t.module])} mutants ({quiet} suppressed); "
                  f"tests: {' '.join(t.tests) or '(none)'}")
            for line, reason in sorted(pragmas[t.module].items()):
                print(f"  suppressed {t.module}:{line}: {reason}")
        print(json.dumps({"modules": len(targets), "mutants": total, "suppressed": n_quiet}))
        scratch.cleanup()
        return 0
    pool = [m for t in drawn for m in every[t.module]]
    chosen = sorted(random.Random(args.seed).sample(pool, args.sample), key=lambda m: (m.module, m.line)) \
        if 0 < args.sample < len(pool) else pool
    chosen = [m for m in chosen if any(m.module == t.module for t in targets)]
    if args.survivors_of:
        # Pass the earlier run's --sample and --seed too, so a name shared by two mutants (the
        # same change twice on one line) picks only the one that run drew.
        named = {line.removeprefix("SURVIVED ").strip() for line in args.survivors_of.read_text().splitlines()
                 if line.startswith("SURVIVED ")}
        chosen = [m for m in chosen if m.name in named or f"{m.module}:{m.line}: {m.description}" in named]
        print(f"{len(chosen)} of the {len(named)} survivors named in {args.survivors_of} (still in the code)", flush=True)
    else:
        print(f"{len(chosen)} of {total} mutants over {len(targets)} modules"
              + (f" (sample, seed {args.seed})" if len(chosen) < total else ""), flush=True)
    quiet = [m for m in chosen if m.line in pragmas[m.module]]
    chosen = [m for m in chosen if m.line not in pragmas[m.module]]
    for m in quiet:
        print(f"SUPPRESSED {m.name} ({pragmas[m.module][m.line]})", flush=True)
    print(f"{len(quiet)} of them suppressed as equivalent (of {n_quiet} on "
          f"{sum(len(pragmas[t.module]) for t in targets)} `# pragma: no mutate` lines; --list names them), "
          f"{len(chosen)} run", flush=True)

    work = [(t, [m for m in chosen if m.module == t.module]) for t in targets]
    work = [(t, mine) for t, mine in work if mine]
    trees: queue.Queue[Path] = queue.Queue()
    for i in range(max(1, args.jobs)):
        trees.put(_copy_tree(Path(scratch.name) / f"copy{i}", _SOURCE))

    def one(item: tuple[Target, list[Mutant]]) -> Result:
        t, mine = item
        tree = trees.get()
        try:
            started = time.monotonic()
            result = run_target(tree, t, mine)
        finally:
            trees.put(tree)
        if result.skipped:
            print(f"{t.module}: NOT RUN ({result.skipped}); {len(mine)} mutants left out", flush=True)
        else:
            print(f"{t.module}: {result.killed}/{result.mutants} killed "
                  f"({result.killed / result.mutants:.2f}) in {time.monotonic() - started:.0f} s", flush=True)
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool_:
            results = list(pool_.map(one, work))
    finally:
        scratch.cleanup()
    mutants = sum(r.mutants for r in results)
    killed = sum(r.killed for r in results)
    print(json.dumps({"mutants": mutants, "killed": killed, "score": round(killed / mutants, 3) if mutants else 0.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
