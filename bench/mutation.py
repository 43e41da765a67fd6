"""The core's mutation score, layer by layer (`python -m bench.mutation [LAYER ...]`).

mutmut 3 (the `dev` extra) plants one small bug at a time in `gibbous/core/<layer>/`
(a flipped comparison, a changed constant, a dropped argument, ...) and runs the tests
that cover the function it changed; a mutant some test fails on is *killed*, one every
test passes with *survived*. The score of a layer is killed / (killed + survived +
timeout + suspicious): a timeout is not counted as a kill, so an infinite loop a test
would never notice does not flatter the score.

Everything happens in a scratch copy of the checkout (tracked and untracked-but-not-ignored
files of `gibbous/`, `tests/` and `pyproject.toml`), so the worktree never holds a mutated
file, whatever happens to the run; the copy is removed at the end unless `--keep`.

The tests run are the core's unit tests (`tests/core/` by default; `--tests` adds or
replaces paths), never the end-to-end ones, and for each mutant only those the first,
clean run saw calling the mutated function (mutmut's stats). Hypothesis runs derandomized
with no deadline, so a run is repeatable and a slow mutant is not counted as killed by a
timing accident. One worker (`--workers`) by default: the machine is shared.

`--sample N` tests at most N mutants per layer: the N whose names have the smallest
SHA-256, a deterministic sample that the report states. `--report PATH` writes the
Markdown report (per-layer table, then each survivor with its diff and, when
`bench/mutation_equivalents.py` lists it, why it is equivalent).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.mutation_equivalents import EQUIVALENT

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("grammar", "podmodel", "settings", "choice", "planning", "lifecycle", "admission")
DEFAULT_TESTS = ("tests/core",)

# A pytest plugin for the scratch copy: repeatable Hypothesis runs without deadlines (the
# trampolines slow every call, and a deadline miss is not a caught bug), and the core's
# memos (functools.lru_cache) emptied before each test: an answer remembered from an
# earlier test would skip the mutated function, and the mutant would survive unseen.
HYPOTHESIS_PLUGIN = textwrap.dedent(
    """\
    import sys

    from hypothesis import settings

    settings.register_profile("mutation", deadline=None, derandomize=True, database=None)
    settings.load_profile("mutation")


    def pytest_runtest_setup(item):
        for name, module in list(sys.modules.items()):
            if name.startswith("gibbous.core") and module is not None:
                for value in list(vars(module).values()):
                    clear = getattr(value, "cache_clear", None)
                    if callable(clear):
                        clear()
    """
)

# mutmut's exit-code meanings (mutmut.stats.status_by_exit_code, 3.8.1).
STATUS_BY_EXIT_CODE = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught by type check",
}

# Run inside the scratch copy with the venv's Python: mutmut's own functions, so the
# mutants listed (and shown) are exactly those `mutmut run` tests.
GENERATE = textwrap.dedent(
    """\
    import contextlib, io, json, os, sys
    from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.utils.file_utils import walk_mutatable_files
    os.makedirs("mutants", exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        copy_src_dir()
        copy_also_copy_files()
        setup_source_paths()
        create_mutants(1)
    names = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        names[str(path)] = sorted(data.exit_code_by_key)
    json.dump(names, sys.stdout)
    """
)
READ_RESULTS = textwrap.dedent(
    """\
    import json, sys
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.file_utils import walk_mutatable_files
    wanted_diffs = set(json.load(sys.stdin))
    out = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in data.exit_code_by_key.items():
            diff = get_diff_for_mutant(name, path=path) if name in wanted_diffs else None
            out[name] = {"path": str(path), "exit_code": code, "diff": diff}
    json.dump(out, sys.stdout)
    """
)


@dataclasses.dataclass
class LayerResult:
    layer: str
    generated: int
    tested: int
    sampled: bool
    seconds: float
    counts: dict[str, int]
    survivors: list[tuple[str, str, str]]  # (name, path, diff)

    @property
    def scored(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("killed", "survived", "timeout", "suspicious"))

    @property
    def score(self) -> float | None:
        return self.counts.get("killed", 0) / self.scored if self.scored else None


def tracked_files(paths: Sequence[str]) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [p for p in listed.split("\0") if p and (ROOT / p).is_file()]


def make_scratch(layers: Sequence[str], tests: Sequence[str]) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="gibbous-mutation-"))
    for rel in tracked_files(["gibbous", "tests", "pyproject.toml"]):
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    (scratch / "mutation_hypothesis_profile.py").write_text(HYPOTHESIS_PLUGIN)
    config = {
        "source_paths": ["gibbous"],
        "only_mutate": [f"gibbous/core/{layer}/*" for layer in layers],
        "also_copy": ["mutation_hypothesis_profile.py"],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "mutation_hypothesis_profile"],
        "pytest_add_cli_args_test_selection": list(tests),
        # A mutant gets (its covering tests' clean time + 1 s) x 10 s of CPU, then is a timeout.
        "timeout_multiplier": 5.0,
        "timeout_constant": 1.0,
        "use_git_change_detection": False,
    }
    with (scratch / "pyproject.toml").open("a") as f:
        f.write("\n[tool.mutmut]\n")
        for key, value in config.items():
            f.write(f"{key} = {json.dumps(value)}\n")
    return scratch


def venv_python(scratch: Path, code: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=scratch,
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def sample(names: Iterable[str], limit: int | None) -> tuple[list[str], bool]:
    ordered = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    if limit is None or len(ordered) <= limit:
        return sorted(ordered), False
    return sorted(ordered[:limit]), True


def run_mutmut(scratch: Path, names: Sequence[str], workers: int, log: Path) -> None:
    with log.open("a") as out:
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(workers), *names],
            cwd=scratch,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def measure(args: argparse.Namespace) -> list[LayerResult]:
    layers: list[str] = args.layers or list(LAYERS)
    scratch = make_scratch(layers, args.tests)
    print(f"scratch copy: {scratch}", flush=True)
    log = scratch / "mutmut.log"
    results: list[LayerResult] = []
    try:
        generated: dict[str, list[str]] = json.loads(venv_python(scratch, GENERATE))
        for layer in layers:
            prefix = f"gibbous/core/{layer}/"
            names = [n for p, ns in generated.items() if p.startswith(prefix) for n in ns]
            chosen, sampled = sample(names, args.sample)
            started = time.monotonic()
            print(f"{layer}: {len(chosen)} of {len(names)} mutants", flush=True)
            if chosen:
                run_mutmut(
                    scratch,
                    [f"gibbous.core.{layer}.*"] if not sampled else chosen,
                    args.workers,
                    log,
                )
            seconds = time.monotonic() - started
            results.append(LayerResult(layer, len(names), len(chosen), sampled, seconds, {}, []))
            print(f"{layer}: done in {seconds:.0f} s", flush=True)
        collect(scratch, results)
    finally:
        if args.keep:
            print(f"kept {scratch} (mutmut.log, mutants/)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def collect(scratch: Path, results: list[LayerResult]) -> None:
    everything: dict[str, dict[str, object]] = json.loads(venv_python(scratch, READ_RESULTS, "[]"))
    survivors = [n for n, r in everything.items() if r["exit_code"] == 0]
    with_diffs: dict[str, dict[str, object]] = json.loads(
        venv_python(scratch, READ_RESULTS, json.dumps(survivors))
    )
    for result in results:
        prefix = f"gibbous/core/{result.layer}/"
        for name, row in sorted(with_diffs.items()):
            if not str(row["path"]).startswith(prefix) or row["exit_code"] is None:
                continue
            status = STATUS_BY_EXIT_CODE.get(int(str(row["exit_code"])), "suspicious")
            result.counts[status] = result.counts.get(status, 0) + 1
            if status == "survived":
                result.survivors.append((name, str(row["path"]), str(row["diff"])))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def report(results: Sequence[LayerResult], args: argparse.Namespace) -> str:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    lines = [
        f"Measured {today}: `python -m bench.mutation {' '.join(args.argv)}`",
        "",
        f"Tests run: {', '.join(f'`{t}`' for t in args.tests)}.",
        "",
        "| layer | mutants | tested | killed | survived | timeout | no tests | score | "
        "score without equivalents | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        equivalents = sum(1 for name, _, _ in r.survivors if name in EQUIVALENT)
        killed = r.counts.get("killed", 0)
        adjusted = killed / (r.scored - equivalents) if r.scored - equivalents else None
        tested = f"{r.tested} (sample)" if r.sampled else str(r.tested)
        lines.append(
            f"| {r.layer} | {r.generated} | {tested} | {killed} | "
            f"{r.counts.get('survived', 0)} | {r.counts.get('timeout', 0)} | "
            f"{r.counts.get('no tests', 0)} | {percent(r.score)} | {percent(adjusted)} | "
            f"{r.seconds / 60:.1f} |"
        )
    lines.append("")
    for r in results:
        if not r.survivors:
            continue
        lines += [f"### Survivors in {r.layer}", ""]
        for name, path, diff in r.survivors:
            reason = EQUIVALENT.get(name)
            lines.append(f"- `{name}` ({path})" + (f": equivalent, {reason}" if reason else ""))
            lines += [
                "",
                "    ```diff",
                *("    " + d for d in diff.strip().splitlines()[2:]),
                "    ```",
                "",
            ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mutation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "layers",
        nargs="*",
        metavar="LAYER",
        help=f"core layers to mutate (default: all of {', '.join(LAYERS)})",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=list(DEFAULT_TESTS),
        help="test paths mutmut may choose from (default: tests/core)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="test at most N mutants per layer (deterministic sample)",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.layers) - set(LAYERS))
    if unknown:
        parser.error(f"unknown layer(s) {', '.join(unknown)}; the layers are {', '.join(LAYERS)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    results = measure(args)
    text = report(results, args)
    if args.report:
        args.report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
