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
SHA-256, a deterministic sample that the report states. `--keep` keeps the scratch copy;
`--resume DIR` continues in one after tests were added: it refreshes the copy from the
checkout (mutmut regenerates the mutants of changed sources) and runs again only the chosen
mutants that are not killed. `--report PATH` writes the
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

from bench.mutation_equivalents import EQUIVALENT, KILLED_BY_HAND

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("grammar", "podmodel", "settings", "choice", "planning", "lifecycle", "admission")
DEFAULT_TESTS = ("tests/core",)

# A pytest plugin for the scratch copy: repeatable Hypothesis runs without deadlines (the
# trampolines slow every call, and a deadline miss is not a caught bug), and the core's
# memos (functools.lru_cache) emptied before each test: an answer remembered from an
# earlier test would skip the mutated function, and the mutant would survive unseen.
PYTEST_PLUGIN = textwrap.dedent(
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
    # A file a run for other layers copied back unmutated is mutated again (its functions'
    # results are kept by mutmut while their code is unchanged).
    for path in walk_mutatable_files():
        copy = os.path.join("mutants", path)
        if os.path.exists(copy) and "__mutmut_" not in open(copy).read():
            os.utime(path)
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
    chosen: list[str]
    sampled: bool
    seconds: float
    counts: dict[str, int]
    survivors: list[tuple[str, str, str]]  # (name, path, diff)
    timeouts: list[str] = dataclasses.field(default_factory=list)

    @property
    def tested(self) -> int:
        return len(self.chosen)

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


def copy_checkout(scratch: Path) -> None:
    """The checkout's files into `scratch`; a file already there with the same content is
    left alone, so mutmut regenerates the mutants of changed sources only."""
    for rel in tracked_files(["gibbous", "tests", "pyproject.toml"]):
        source, target = ROOT / rel, scratch / rel
        if target.is_file() and target.read_bytes() == source.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)


def configure(scratch: Path, layers: Sequence[str], tests: Sequence[str]) -> None:
    # The plugin's name and pytest's arguments are part of mutmut's cache key: a change
    # resets every result of a kept copy, so they stay as they are.
    (scratch / "mutation_hypothesis_profile.py").write_text(PYTEST_PLUGIN)
    # mutmut copies the files it does not mutate over their mutants: a kept copy mutates
    # every layer it ever did, so their mutants and results stay.
    record = scratch / "mutation-layers.json"
    before = json.loads(record.read_text()) if record.is_file() else []
    every = [layer for layer in LAYERS if layer in before or layer in layers]
    record.write_text(json.dumps(every))
    config = {
        "source_paths": ["gibbous"],
        "only_mutate": [f"gibbous/core/{layer}/*" for layer in every],
        "also_copy": ["mutation_hypothesis_profile.py"],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "mutation_hypothesis_profile"],
        "pytest_add_cli_args_test_selection": list(tests),
        # A mutant gets 4 x (its covering tests' clean time + 1 s) of CPU time, then is a
        # timeout (CPU time: a loaded machine does not turn slow into timed out).
        "timeout_multiplier": 2.0,
        "timeout_constant": 1.0,
        "use_git_change_detection": False,
    }
    text = (ROOT / "pyproject.toml").read_text() + "\n[tool.mutmut]\n"
    text += "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items())
    (scratch / "pyproject.toml").write_text(text)


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


def status_of(exit_code: object) -> str:
    if exit_code is None:
        return "not checked"
    return STATUS_BY_EXIT_CODE.get(int(str(exit_code)), "suspicious")


def measure(args: argparse.Namespace) -> list[LayerResult]:
    layers: list[str] = args.layers or list(LAYERS)
    scratch: Path = args.resume or Path(tempfile.mkdtemp(prefix="gibbous-mutation-"))
    print(f"scratch copy: {scratch}", flush=True)
    log = scratch / "mutmut.log"
    results: list[LayerResult] = []
    try:
        if not args.report_only:
            copy_checkout(scratch)
        configure(scratch, layers, args.tests)  # which layers mutmut lists
        generated: dict[str, list[str]] = json.loads(venv_python(scratch, GENERATE))
        before = read_results(scratch, []) if args.resume else {}
        for layer in layers:
            prefix = f"gibbous/core/{layer}/"
            names = [n for p, ns in generated.items() if p.startswith(prefix) for n in ns]
            chosen, sampled = sample(names, args.sample)
            started = time.monotonic()
            if args.resume:
                # Killed stays killed when only tests were added; a changed function's
                # mutants were regenerated without a result, so they run again.
                run = [
                    n for n in chosen if status_of(before.get(n, {}).get("exit_code")) != "killed"
                ]
            else:
                run = chosen if sampled else [f"gibbous.core.{layer}.*"]
            print(f"{layer}: {len(chosen)} of {len(names)} mutants, {len(run)} to run", flush=True)
            if chosen and run and not args.report_only:
                run_mutmut(scratch, run, args.workers, log)
            seconds = time.monotonic() - started
            results.append(LayerResult(layer, len(names), chosen, sampled, seconds, {}, []))
            print(f"{layer}: done in {seconds:.0f} s", flush=True)
        collect(scratch, results)
    finally:
        if args.keep or args.resume:
            print(f"kept {scratch} (mutmut.log, mutants/)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def read_results(scratch: Path, diffs_of: Sequence[str]) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = json.loads(
        venv_python(scratch, READ_RESULTS, json.dumps(list(diffs_of)))
    )
    return found


def collect(scratch: Path, results: list[LayerResult]) -> None:
    chosen = {name for result in results for name in result.chosen}
    first = read_results(scratch, [])
    survivors = [n for n in chosen if status_of(first.get(n, {}).get("exit_code")) == "survived"]
    rows = read_results(scratch, survivors)
    for result in results:
        for name in sorted(result.chosen):
            row = rows.get(name, {})
            status = status_of(row.get("exit_code"))
            result.counts[status] = result.counts.get(status, 0) + 1
            if status == "survived":
                result.survivors.append((name, str(row["path"]), str(row["diff"])))
            elif status == "timeout":
                result.timeouts.append(name)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def report(results: Sequence[LayerResult], args: argparse.Namespace) -> str:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    lines = [
        f"Measured {today}: `python -m bench.mutation {' '.join(args.argv)}`",
        "",
        f"Tests mutmut chose from: {', '.join(f'`{t}`' for t in args.tests)}.",
        "",
    ]
    if args.sample is not None:
        lines += [
            f"Sampled layers (marked *sample*): the {args.sample} mutants with the smallest "
            "SHA-256 of their name.",
            "",
        ]
    if args.resume:
        lines += [
            "Resumed: mutants killed in the earlier run of this scratch copy were not run "
            "again; minutes are this run's.",
            "",
        ]
    lines += [
        "| layer | mutants | tested | killed | survived | timeout | no tests | not checked "
        "| score | adjusted score | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        equivalents = sum(1 for name, _, _ in r.survivors if name in EQUIVALENT)
        by_hand = sum(1 for name, _, _ in r.survivors if name in KILLED_BY_HAND)
        killed = r.counts.get("killed", 0)
        scored = r.scored - equivalents
        adjusted = (killed + by_hand) / scored if scored else None
        tested = f"{r.tested} *sample*" if r.sampled else str(r.tested)
        lines.append(
            f"| {r.layer} | {r.generated} | {tested} | {killed} | "
            f"{r.counts.get('survived', 0)} | {r.counts.get('timeout', 0)} | "
            f"{r.counts.get('no tests', 0)} | {r.counts.get('not checked', 0)} | "
            f"{percent(r.score)} | {percent(adjusted)} | "
            f"{r.seconds / 60:.1f} |"
        )
    lines += [
        "",
        "Score: killed / (killed + survived + timeout). Adjusted score: equivalent survivors "
        "left out, survivors killed by hand counted as killed (both listed below with the "
        "reason).",
        "",
    ]
    for r in results:
        if r.timeouts:
            lines += [f"Timeouts in {r.layer}: " + ", ".join(f"`{n}`" for n in r.timeouts), ""]
    for r in results:
        if not r.survivors:
            continue
        lines += [f"### Survivors in {r.layer}", ""]
        for name, path, diff in r.survivors:
            if name in EQUIVALENT:
                lines.append(f"- `{name}` ({path}): equivalent, {EQUIVALENT[name]}")
            elif name in KILLED_BY_HAND:
                lines.append(f"- `{name}` ({path}): killed by hand, {KILLED_BY_HAND[name]}")
            else:
                lines.append(f"- `{name}` ({path})")
            lines += [
                "",
                "    ```diff",
                *("    " + d for d in diff.splitlines()[2:] if d[:1] in "+-"),
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
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="with --resume: run nothing, report what the scratch copy holds",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue in a scratch copy kept by --keep: refresh it from the checkout and run "
        "again the chosen mutants that are not killed (after adding tests)",
    )
    args = parser.parse_args(argv)
    if args.report_only and not args.resume:
        parser.error("--report-only needs --resume DIR")
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
