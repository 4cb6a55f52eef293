"""`make fuzz` (`python -m tests.fuzz --seconds N`): new command lines, port-hammer seeds and
random-instruction seeds through the real `pyvmm` command until N seconds have passed, judged as
the suite judges them (tests/fuzz/judge.py). Prints the cases, the exits the guests made and the
failures by kind; every failing case is kept under --out (its command line, its stderr, the image
it ran) to be replayed. Exits 1 if any case failed."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hypothesis.errors import NonInteractiveExampleWarning

from tests.fuzz.command_lines import MAX_RUN, command_lines, effective_timeout, make_corpus
from tests.fuzz.guests import hammer_image, random_insns_image
from tests.fuzz.judge import Outcome, run_pyvmm

WALL_SLACK = 30.0  # start-up on a loaded host, on top of a run's --timeout, before a case is a hang
HAMMER_TIMEOUT = 300.0
RANDOM_TIMEOUT = 1.0


class Fuzzer:
    def __init__(self, out: Path, rng: random.Random) -> None:
        self.out, self.rng = out, rng
        self.work = out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.corpus = make_corpus(Path("/tmp") / "pyvmm-fuzz-corpus")
        self.lines = command_lines(self.corpus)
        self.cases: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.exits = 0
        self.kept = 0

    # --- one case of each kind -----------------------------------------------------------------
    def cli_case(self) -> tuple[Outcome, Path | None]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            argv = self.lines.example()
        return run_pyvmm(argv, timeout=effective_timeout(argv), wall_limit=MAX_RUN + WALL_SLACK), None

    def hammer_case(self) -> tuple[Outcome, Path | None]:
        seed, cpl = self.rng.getrandbits(63) | 1, self.rng.choice((0, 3, 3, 3))
        iterations = self.rng.randint(5_000, 40_000) if cpl == 3 else self.rng.randint(200, 2_000)
        image = hammer_image(self.work / "hammer.bin", seed=seed, cpl=cpl, iterations=iterations)
        argv = ["run", str(image), "--timeout", repr(HAMMER_TIMEOUT)]
        if self.rng.random() < 0.7:
            argv += ["--spp", "0x7000000"]
        o = run_pyvmm(argv, timeout=HAMMER_TIMEOUT, wall_limit=HAMMER_TIMEOUT + WALL_SLACK)
        if o.failure is None and (o.status != 0 or not o.stdout.endswith(b"port-hammer: done\n")):
            o.failure, o.detail = "hammer-not-done", o.stderr[-2000:]  # the guest must survive to DONE
        return o, image

    def random_case(self) -> tuple[Outcome, Path | None]:
        seed = self.rng.getrandbits(63)
        cpl, idt = self.rng.choice((0, 3)), self.rng.random() < 0.8
        chunk_size = self.rng.choice((8, 16, 32, 64))
        image = random_insns_image(self.work / "random.bin", seed=seed, cpl=cpl, idt=idt, chunk_size=chunk_size)
        argv = ["run", str(image), "--timeout", repr(RANDOM_TIMEOUT)]
        if self.rng.random() < 0.2:
            argv += ["--spp", self.rng.choice(("0x200000", "0x300000", "0x100000:0xffff0000"))]
        return run_pyvmm(argv, timeout=RANDOM_TIMEOUT, wall_limit=RANDOM_TIMEOUT + WALL_SLACK), image

    # --- bookkeeping ------------------------------------------------------------------------------
    def record(self, kind: str, outcome: Outcome, image: Path | None) -> None:
        self.cases[kind] += 1
        self.exits += outcome.exits
        if outcome.failure is None:
            return
        self.failures[outcome.failure] += 1
        self.kept += 1
        where = self.out / f"failure-{self.kept:04d}-{outcome.failure}"
        where.mkdir(parents=True, exist_ok=True)
        if image is not None:
            shutil.copy(image, where / image.name)
        (where / "case.json").write_text(json.dumps({
            "kind": kind, "failure": outcome.failure, "argv": outcome.argv, "status": outcome.status,
            "wall": outcome.wall, "detail": outcome.detail, "stderr": outcome.stderr[-20000:],
        }, indent=1))  # fmt: skip
        print(f"fuzz: FAILURE {outcome.failure} ({kind}): {outcome.argv}  -> {where}", flush=True)

    def report(self, elapsed: float) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.cases.items()))
        failures = ", ".join(f"{k} {n}" for k, n in sorted(self.failures.items())) or "none"
        total = sum(self.cases.values())
        return f"fuzz: {total} cases in {elapsed:.0f} s ({kinds}); {self.exits:,} exits; failures: {failures}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz [600]")
    p.add_argument("--out", type=Path, default=Path("build/fuzz"), help="where failing cases are kept")
    p.add_argument("--seed", type=int, default=None, help="seed of the seeds [from the clock]")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else time.time_ns()
    fuzzer = Fuzzer(args.out, random.Random(seed))
    # command lines are cheap, guests make the exits: about one guest case in four
    kinds: list[tuple[str, Callable[[], tuple[Outcome, Path | None]]]] = [
        ("cli", fuzzer.cli_case), ("cli", fuzzer.cli_case), ("cli", fuzzer.cli_case), ("cli", fuzzer.cli_case),
        ("random", fuzzer.random_case), ("random", fuzzer.random_case), ("hammer", fuzzer.hammer_case),
    ]  # fmt: skip
    print(f"fuzz: {args.seconds:g} s from seed {seed}; failing cases go to {args.out}", flush=True)
    start = time.monotonic()
    last_report = start
    while time.monotonic() - start < args.seconds:
        kind, case = fuzzer.rng.choice(kinds)
        outcome, image = case()
        fuzzer.record(kind, outcome, image)
        if time.monotonic() - last_report > 60:
            last_report = time.monotonic()
            print(fuzzer.report(last_report - start), flush=True)
    print(fuzzer.report(time.monotonic() - start), flush=True)
    return 1 if fuzzer.failures else 0


if __name__ == "__main__":
    sys.exit(main())
