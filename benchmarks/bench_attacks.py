"""cnnlens FGSM / PGD against torchattacks on the same model, images and batch.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attacks.py [--device cuda] [--quick]

torchattacks is in cnnlens's `test` extra only (`pip install torchattacks`), never a runtime dependency.
Both attack the same `cnnlens.Normalized(model, Preprocessing())` on pixels in [0, 1] (torchattacks'
recommended setup; cnnlens returns its images on the CPU); runs alternate (cnnlens, torchattacks, cnnlens, ...) and the best of each is kept, so load
on the machine hits both alike. Baseline: torchattacks 3.5 (`FGSM(model, eps)`, `PGD(model, eps,
alpha=2/255, steps=10, random_start=True)`) on the same wrapped model, built once outside the timing.
Prints images/s (best run of each) and `paired`: the median over --rounds interleaved rounds (default
7) of cnnlens time / torchattacks time for the same round, so < 1 means cnnlens is faster (targets:
FGSM <= 1.0, PGD <= 1.0). Also times a 5-point FGSM robustness curve: cnnlens reuses the gradient
sign across eps, torchattacks runs one attack per eps (less work, not faster code).
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torchvision

from cnnlens import Normalized, Preprocessing
from cnnlens.attacks import fgsm, pgd, robustness

from paired import interleave, paired, spread


def syncer(device: str):  # noqa: ANN201
    return torch.cuda.synchronize if device.startswith("cuda") else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="resnet18,mobilenet_v2", help="comma-separated subset of the cases' models")
    parser.add_argument("--sizes", default="128,224", help="comma-separated image sides")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--attacks", default="FGSM,PGD-10,curve-5")
    args = parser.parse_args()
    import torchattacks

    dev = args.device
    cases = [("resnet18", 8, 128), ("resnet18", 8, 224), ("mobilenet_v2", 8, 128), ("mobilenet_v2", 8, 224)]
    cases = [c for c in cases if c[0] in args.models.split(",") and str(c[2]) in args.sizes.split(",")]
    if args.quick:
        cases = [("resnet18", 4, 64)]
    repeat = 2 if args.quick else args.rounds
    print(f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, device {dev}, threads {torch.get_num_threads()}")
    print(f"baseline: torchattacks on the same model; {repeat} interleaved rounds; paired = median of cnnlens time / torchattacks time")
    print(f"{'model':14s} {'batch':>5s} {'px':>4s} {'attack':9s} {'cnnlens img/s':>14s} {'torchattacks img/s':>19s} {'paired':>7s} {'range':>10s}")
    for name, batch, px in cases:
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = Normalized(torchvision.models.get_model(name, weights=None), Preprocessing())
        net = net.to(dev).eval()
        x = torch.rand(batch, 3, px, px, device=dev)
        y = torch.randint(0, 1000, (batch,), device=dev)
        eps = 8 / 255
        ta_fgsm = torchattacks.FGSM(net, eps=eps)
        ta_pgd = torchattacks.PGD(net, eps=eps, alpha=2 / 255, steps=10, random_start=True)
        sync = syncer(dev)
        rows = []
        if "FGSM" in args.attacks:
            rows.append(("FGSM", interleave({"cnnlens": lambda: fgsm(net, x, y, eps=eps), "torchattacks": lambda: ta_fgsm(x, y)}, repeat, sync=sync)))
        if "PGD-10" in args.attacks:
            rows.append(("PGD-10", interleave({"cnnlens": lambda: pgd(net, x, y, eps=eps, step_size=2 / 255, steps=10, seed=0),
                                               "torchattacks": lambda: ta_pgd(x, y)}, repeat, sync=sync)))
        grid = [0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]

        def ours_curve() -> None:
            robustness(net, [(x, y)], eps=grid, progress=False)

        def theirs_curve() -> None:
            with torch.no_grad():
                (net(x).argmax(1) == y).sum()
            for e in grid[1:]:
                adv = torchattacks.FGSM(net, eps=e)(x, y)
                with torch.no_grad():
                    (net(adv).argmax(1) == y).sum()

        if "curve-5" in args.attacks:
            rows.append(("curve-5", interleave({"cnnlens": ours_curve, "torchattacks": theirs_curve}, repeat, sync=sync)))
        for attack, t in rows:
            ours, theirs = batch / min(t["cnnlens"]), batch / min(t["torchattacks"])
            print(f"{name:14s} {batch:5d} {px:4d} {attack:9s} {ours:14.2f} {theirs:19.2f} {paired(t, 'cnnlens', 'torchattacks'):7.2f} {spread(t, 'cnnlens', 'torchattacks'):>10s}", flush=True)


if __name__ == "__main__":
    main()
