"""Do the report's speed paths still pay? Each one off in turn, against all on and against torchinfo.

The report's two meta-device passes (``cnnlens.reports``) have two kinds of speed path, each giving
the numbers the real calls give (tests/test_memory.py compares whole reports with them on and off):

- **templates**: calls of a *family* (batch norm, activations, concatenation, convolution, linear, layer
  norm, max pooling ...) of a shape not seen before are built from the family's rule once a real call
  agreed; in the eval pass convolutions, linear layers, max pooling and ReLU from their first call;
- **shortcuts**: below autograd, ``addmm``, max pooling with indices and same-shape elementwise ops take
  their output from a shape rule instead of PyTorch's Python meta kernel (``memo.meta_shortcut``).

The exact-signature memo itself stays on in every configuration. This script times ``cnnlens.report``
with both, with each one off, and with both off, beside the baseline the report's target is
stated against: torchinfo's ``summary`` of the same model on the meta device. Paired medians over
interleaved rounds (``paired.py``: each round runs every configuration in turn); ratios < 1 mean the
first is faster.

    .venv/bin/pip install torchinfo        # a benchmark-only install, not a cnnlens dependency
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_report_memo.py [--rounds 7] [--models resnet50,vgg16]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import warnings
from collections.abc import Iterator

import torch
import torchvision

import cnnlens
import cnnlens.reports.engine as engine
import cnnlens.reports.memo as memo

from paired import interleave, paired

MODELS = ["resnet50", "resnet152", "densenet201", "efficientnet_b0", "mobilenet_v3_large", "swin_t", "vgg16"]
OFF = {
    "all on": (),
    "no templates": ("templates",),
    "no shortcuts": ("shortcuts",),
    "all off": ("templates", "shortcuts"),
}


@contextlib.contextmanager
def speed_paths_off(off: tuple[str, ...]) -> Iterator[None]:
    """The named speed paths turned off inside the block (module attributes patched, then restored)."""
    saved = (memo._family, engine.meta_shortcut)
    if "templates" in off:
        memo._family = lambda *args: None
    if "shortcuts" in off:
        engine.meta_shortcut = lambda *args: None
    try:
        yield
    finally:
        memo._family, engine.meta_shortcut = saved


def build(name: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    import torchinfo

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds, paired medians")
    print("baseline: torchinfo.summary of the same model on the meta device; 'all on' is cnnlens.report as shipped")
    print("| model | all on ms | torchinfo meta ms | all on / torchinfo | " + " | ".join(f"{k} / all on" for k in list(OFF)[1:]) + " |")
    print("|---|---|---|---|" + "---|" * (len(OFF) - 1))
    for name in args.models.split(","):
        real = build(name)
        meta = copy.deepcopy(real).to("meta")
        size = (1, 3, 224, 224)

        def ours(off: tuple[str, ...]):  # noqa: ANN202
            def call() -> None:
                with speed_paths_off(off):
                    cnnlens.report(real, size)  # noqa: B023

            return call

        calls = {label: ours(off) for label, off in OFF.items()}
        calls["torchinfo"] = lambda: torchinfo.summary(meta, input_size=size, device="meta", verbose=0)  # noqa: B023
        times = interleave(calls, args.rounds)
        others = " | ".join(f"{paired(times, k, 'all on'):.2f}" for k in list(OFF)[1:])
        print(f"| {name} | {1000 * statistics.median(times['all on']):.1f} | {1000 * statistics.median(times['torchinfo']):.1f} | "
              f"{paired(times, 'all on', 'torchinfo'):.2f} | {others} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
