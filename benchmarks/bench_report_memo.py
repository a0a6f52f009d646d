"""Do the op-family templates of the report's call memo still pay?

The memo (``cnnlens.reports.memo``) builds a repeated call's outputs from an exact signature; on top of
that, calls of a *family* (batch norm, activations, concatenation, convolution) of a shape not seen
before are built from a template once two real calls of the family agreed. This script times
``cnnlens.report`` with the templates and with them turned off (exact signatures only), beside the
baseline the report's target is stated against: torchinfo's ``summary`` of the same model on the meta
device. Paired medians over interleaved rounds (each round runs the three in turn, so load from other
processes hits them alike); ratios < 1 mean the first is faster.

    .venv/bin/pip install torchinfo        # a benchmark-only install, not a cnnlens dependency
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_report_memo.py [--rounds 7] [--models resnet50,densenet201]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torchvision

import cnnlens
import cnnlens.reports.memo as memo

MODELS = ["resnet50", "resnet152", "densenet201", "efficientnet_b0", "mobilenet_v3_large", "swin_t", "vgg16"]


def build(name: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None).eval()


def seconds(call) -> float:  # noqa: ANN001
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    import torchinfo

    with_families = memo._family
    without_families = lambda *a, **k: None  # noqa: E731 - exact signatures only
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds, paired medians")
    print("baseline: torchinfo.summary of the same model on the meta device")
    print("| model | templates s | exact only s | torchinfo meta s | templates / exact | templates / torchinfo | exact / torchinfo |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        real = build(name)
        meta = copy.deepcopy(real).to("meta")
        size = (1, 3, 224, 224)

        def ours(family):  # noqa: ANN001, ANN202
            def call() -> None:
                memo._family = family
                try:
                    cnnlens.report(real, size)
                finally:
                    memo._family = with_families

            return call

        calls = {
            "templates": ours(with_families),
            "exact": ours(without_families),
            "torchinfo": lambda: torchinfo.summary(meta, input_size=size, device="meta", verbose=0),  # noqa: B023
        }
        for call in calls.values():  # warm-up
            call()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():
                times[key].append(seconds(call))
        med = {k: statistics.median(v) for k, v in times.items()}
        paired = lambda a, b: statistics.median(x / y for x, y in zip(times[a], times[b]))  # noqa: E731
        print(f"| {name} | {med['templates']:.3f} | {med['exact']:.3f} | {med['torchinfo']:.3f} | "
              f"{paired('templates', 'exact'):.2f} | {paired('templates', 'torchinfo'):.2f} | {paired('exact', 'torchinfo'):.2f} |", flush=True)


if __name__ == "__main__":
    main()
