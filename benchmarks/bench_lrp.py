"""LRP against zennit, and relevance maximization against activation maximization.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_lrp.py [--rounds 7] [--batch 8] [--size 224]

Row 1, baseline zennit 0.5 (``EpsilonPlusFlat`` with its ``ResNetCanonizer``, ``Gradient``
attributor): LRP heatmaps of a batch of ``--batch`` images on a random-init resnet50 at ``--size`` px,
each explaining its top class, against ``cnnlens.relevance.propagate`` with the same composite; the
heatmaps are equal (tests/test_relevance.py). Both canonize/fold BatchNorm every call. Reported:
images per second and the paired-median ratio zennit time / cnnlens time (>= 1: cnnlens as fast or
faster). Where the difference comes from: zennit recomputes every convolution twice in its z+ rule
(positive and negative inputs); cnnlens skips the negative-input half when the input has no
negative value, which is every layer after a ReLU.

Row 2, baseline activation-max mining (``top_patches``, ``by="activation"``: a forward pass up to the
layer): relevance-max mining (``by="relevance"``: a forward to the logits and an LRP backward pass
down to the layer) of one squeezenet1_0 layer over the same image files. Reported: the paired-median
ratio relevance / activation (target <= 2.5). Ratios are medians over interleaved rounds of the
same process, so that machine load moves both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torchvision

import cnnlens
from cnnlens.relevance import propagate
from cnnlens.units.patches import PatchSettings, top_patches

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
IDENTITY = cnnlens.Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize_size=None, crop_size=None, source="identity")


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def zennit_row(args: argparse.Namespace) -> dict[str, float]:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        top = net(x).argmax(1)

    def theirs() -> None:
        with Gradient(model=net, composite=EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
            attributor(x, lambda out: torch.eye(out.shape[1])[top] * out)

    def ours() -> None:
        propagate(net, x, top, composite="epsilon-plus-flat", preprocessing=IDENTITY)

    theirs(), ours()  # warm up
    t_z, t_c = [], []
    for _ in range(args.rounds):
        t_z.append(timed(theirs))
        t_c.append(timed(ours))
    ratio = statistics.median(z / c for z, c in zip(t_z, t_c))
    return {"zennit_img_s": args.batch / statistics.median(t_z), "cnnlens_img_s": args.batch / statistics.median(t_c), "zennit_over_cnnlens": ratio}


def mining_row(args: argparse.Namespace) -> dict[str, float]:
    weights = DATA / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"
    net = cnnlens.create_model("squeezenet1_0", weights if weights.is_file() else None, seed=0)
    images = args.data if args.data.is_dir() else torch.rand(args.images, 3, 224, 224)

    def mine(by: str) -> None:
        top_patches(net, args.layer, images, k=9, limit=args.images, settings=PatchSettings(by=by, crops=False, batch_size=32), progress=False)

    mine("activation"), mine("relevance")
    t_a, t_r = [], []
    for _ in range(args.rounds):
        t_a.append(timed(lambda: mine("activation")))
        t_r.append(timed(lambda: mine("relevance")))
    return {"activation_s": statistics.median(t_a), "relevance_s": statistics.median(t_r), "relevance_over_activation": statistics.median(r / a for r, a in zip(t_r, t_a))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--data", type=Path, default=DATA / "imagenet_samples")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--layer", default="features.12")
    parser.add_argument("--only", choices=["zennit", "mining"], default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds, paired medians")
    print("baselines: zennit's EpsilonPlusFlat with its ResNetCanonizer (heatmaps); activation-max mining of the same layer (relevance-max mining)")
    if args.only in (None, "zennit"):
        z = zennit_row(args)
        print(f"LRP resnet50 batch {args.batch} at {args.size} px (EpsilonPlusFlat): zennit {z['zennit_img_s']:.2f} img/s, "
              f"cnnlens {z['cnnlens_img_s']:.2f} img/s; zennit time / cnnlens time = {z['zennit_over_cnnlens']:.2f} (target >= 1.0)")  # fmt: skip
    if args.only in (None, "mining"):
        m = mining_row(args)
        print(f"squeezenet1_0 {args.layer}, {args.images} images: activation-max {m['activation_s']:.2f} s, relevance-max {m['relevance_s']:.2f} s; "
              f"relevance / activation = {m['relevance_over_activation']:.2f} (target <= 2.5)")  # fmt: skip


if __name__ == "__main__":
    main()
