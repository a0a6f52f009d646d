"""Start-up cost: ``import cnnlens`` and ``cnnlens --help`` over a bare Python start.

    .venv/bin/python benchmarks/bench_startup.py [--rounds 7]

Baseline: ``python -c pass`` with the same interpreter. Rounds interleave the three commands (fresh
processes each time); printed are the median of each and the paired median over rounds of each
command's time minus the baseline's in the same round. Target: ``cnnlens --help`` < 0.1 s over the
baseline (its heavy imports, torch included, happen inside the commands that need them).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cli = shutil.which("cnnlens") or str(Path(sys.executable).with_name("cnnlens"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import cnnlens'": [sys.executable, "-c", "import cnnlens"],
        "python -c 'import cnnlens; cnnlens.__version__'": [sys.executable, "-c", "import cnnlens; cnnlens.__version__"],
        "cnnlens --help": [cli, "--help"],
    }
    for command in commands.values():  # warm the file cache
        seconds(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            times[name].append(seconds(command))
    base = times["python -c pass"]
    print(f"baseline: python -c pass ({sys.executable}); {args.rounds} interleaved rounds")
    for name, values in times.items():
        over = statistics.median(t - b for t, b in zip(values, base))
        print(f"{name:48s} median {statistics.median(values) * 1000:7.1f} ms   over the baseline (paired median) {over * 1000:+7.1f} ms")


if __name__ == "__main__":
    main()
