"""Feature visualization speed: cnnlens.featvis.render against lucent's render_vis, in one run.

Same model and weights, same parameterization (Fourier 1/f + decorrelation, sd 0.01), same
standard transforms (pad 12, jitter 8, scale 0.9-1.1, rotate +-10, jitter 4), same Adam(0.05),
same image size (224 px, so lucent adds no upsampling), CPU. Prints steps per second for a channel
of a middle layer and for a class logit, the ratio cnnlens/lucent, and the cost of N channels in
one batch against N separate runs.

Two baselines, both printed: lucent as its README uses it (the model's parameters keep
``requires_grad=True``, so every step also computes every weight gradient), and lucent at its best, on
a copy whose parameters are frozen by hand (the like-for-like comparison: cnnlens freezes them).
Every time is taken twice: wall clock, and the CPU time of this process (``time.process_time``, all
threads), which other people's jobs disturb far less. Rounds interleave the contenders; each ratio is
the paired median over ``--rounds`` rounds (default 7) of cnnlens time / baseline time in the same
round, with its range (< 1: cnnlens faster).

lucent is not a dependency of cnnlens; install it in a separate environment:

    python3 -m venv /tmp/benchenv   # plus a .pth pointing at the project's venv site-packages
    /tmp/benchenv/bin/pip install --no-deps torch-lucent kornia==0.4.1 decorator ipython traitlets
    OMP_NUM_THREADS=2 /tmp/benchenv/bin/python benchmarks/bench_featvis.py --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth

(``../shared/data`` is the development data folder beside the checkout.)
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cnnlens from this checkout, also in the bench venv

from paired import ratios  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--layer", default="features.9")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--channels", type=int, default=8, help="N for the batch-vs-runs comparison")
    parser.add_argument("--batch-size", type=int, default=64, help="image size for the batch-vs-runs comparison")
    args = parser.parse_args(argv)

    import cnnlens
    from cnnlens.featvis import objectives as O
    from cnnlens.featvis import Recipe, render

    model = cnnlens.create_model(args.model, args.weights, seed=0)
    try:
        from lucent.optvis import param as lparam
        from lucent.optvis import render as lrender
        from lucent.optvis import transform as ltransform
    except ImportError:
        lrender = None
        print("lucent is not installed here: only cnnlens numbers (see the module docstring)")

    def ours(objective: object, steps: int, size: int, batch: int | None = None) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        render(model, objective, size=size, batch=batch, steps=steps, seed=0, recipe=Recipe(redirect_steps=0), progress=False)
        return time.perf_counter() - t, time.process_time() - c

    # lucent leaves a hook on every module, so it gets copies. As its README uses it the parameters
    # keep requires_grad=True (each step also computes weight gradients, and .grad accumulates);
    # the "frozen" copy is lucent at its best, with requires_grad=False set by hand.
    lucent_readme = copy.deepcopy(model).eval()
    lucent_frozen = copy.deepcopy(model).eval()
    for p in lucent_frozen.parameters():
        p.requires_grad_(False)

    def theirs(objective: str, steps: int, size: int, frozen: bool) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        lrender.render_vis(
            lucent_frozen if frozen else lucent_readme, objective, lambda: lparam.image(size),
            transforms=ltransform.standard_transforms, thresholds=(steps,), show_image=False, progress=False,
        )
        return time.perf_counter() - t, time.process_time() - c

    print(f"model {args.model} ({args.weights}), {args.size} px, {args.steps} steps, torch threads {torch.get_num_threads()}")
    print(f"baseline: lucent's render_vis as in its README, and on a copy with its parameters frozen by hand; "
          f"paired medians of cnnlens time / lucent time over {args.rounds} interleaved rounds")  # fmt: skip
    lucent_layer = args.layer.replace(".", "_")
    cases = [("channel " + args.layer + ":5", O.channel(args.layer, 5), f"{lucent_layer}:5"),
             ("class logit 130", O.class_logit(130), "labels:130")]
    for label, objective, lucent_objective in cases:
        ours(objective, 2, args.size)  # warm-up
        if lrender is not None:
            theirs(lucent_objective, 2, args.size, True)
        t_ours: list[tuple[float, float]] = []
        t_readme: list[tuple[float, float]] = []
        t_frozen: list[tuple[float, float]] = []
        for _ in range(args.rounds):  # interleaved: the machine is shared
            t_ours.append(ours(objective, args.steps, args.size))
            if lrender is not None:
                t_readme.append(theirs(lucent_objective, args.steps, args.size, False))
                t_frozen.append(theirs(lucent_objective, args.steps, args.size, True))
        for k, clock in enumerate(("wall", "cpu")):
            line = f"{label:24s} [{clock:4s}] cnnlens {args.steps / min(t[k] for t in t_ours):5.2f} steps/s (best round)"
            for name, theirs_times in (("lucent as in its README", t_readme), ("lucent, params frozen by hand", t_frozen)):
                if theirs_times:
                    median, lo, hi = ratios([t[k] for t in t_ours], [t[k] for t in theirs_times])
                    line += f" | cnnlens / {name}: paired median {median:4.2f} ({lo:.2f}-{hi:.2f})"
            print(line, flush=True)

    n, size, steps = args.channels, args.batch_size, args.steps
    runs_b = [ours(O.channels(args.layer, list(range(n))), steps, size) for _ in range(min(args.rounds, 3))]
    runs_s = [ours(O.channel(args.layer, 0), steps, size) for _ in range(min(args.rounds, 3))]
    for k, clock in enumerate(("wall", "cpu")):
        batched, single = min(t[k] for t in runs_b), min(t[k] for t in runs_s)
        print(
            f"{n} channels at {size} px, {steps} steps [{clock:4s}]: one batch {batched:.2f} s vs {n} runs {n * single:.2f} s "
            f"({n} x {single:.2f} s) -> the batch costs {batched / (n * single):.2f} of the runs ({n * single / batched:.1f}x faster)"
        )


if __name__ == "__main__":
    main()
