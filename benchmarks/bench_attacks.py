"""cnnlens FGSM / PGD against torchattacks on the same model, images and batch.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attacks.py [--device cuda] [--quick]

torchattacks is in cnnlens's `test` extra only (`pip install torchattacks`), never a runtime dependency.
Both attack the same `cnnlens.Normalized(model, Preprocessing())` on pixels in [0, 1] (torchattacks'
recommended setup; cnnlens returns its images on the CPU); runs alternate (cnnlens, torchattacks, cnnlens, ...) and the best of each is kept, so load
on the machine hits both alike. Prints images/s (best run of each), their ratio cnnlens /
torchattacks, and `paired`: the median over rounds of the ratio of back-to-back runs (targets:
FGSM >= 1.0, PGD >= 1.0). Also times a 5-point FGSM robustness curve: cnnlens reuses
the gradient sign across eps, torchattacks runs one attack per eps.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision

from cnnlens import Normalized, Preprocessing
from cnnlens.attacks import fgsm, pgd, robustness


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def alternate(fns: dict[str, callable], repeat: int, device: str) -> dict[str, list[float]]:  # type: ignore[valid-type]
    """Run the functions in turn ``repeat`` times (after one warm-up each); every time, per function."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="resnet18,mobilenet_v2", help="comma-separated subset of the cases' models")
    args = parser.parse_args()
    import torchattacks

    dev = args.device
    cases = [("resnet18", 8, 128), ("resnet18", 8, 224), ("mobilenet_v2", 8, 128), ("mobilenet_v2", 8, 224)]
    cases = [c for c in cases if c[0] in args.models.split(",")]
    if args.quick:
        cases = [("resnet18", 4, 64)]
    repeat = 2 if args.quick else 5
    print(f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, device {dev}, threads {torch.get_num_threads()}")
    print(f"{'model':14s} {'batch':>5s} {'px':>4s} {'attack':9s} {'cnnlens img/s':>14s} {'torchattacks img/s':>19s} {'ratio':>6s} {'paired':>7s}")
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
        g = torch.Generator(device=dev).manual_seed(0)
        rows = [
            ("FGSM", alternate({"cnnlens": lambda: fgsm(net, x, y, eps=eps), "torchattacks": lambda: ta_fgsm(x, y)}, repeat, dev)),
            ("PGD-10", alternate({"cnnlens": lambda: pgd(net, x, y, eps=eps, step_size=2 / 255, steps=10, generator=g),
                                  "torchattacks": lambda: ta_pgd(x, y)}, max(1, repeat - 1), dev)),
        ]
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

        rows.append(("curve-5", alternate({"cnnlens": ours_curve, "torchattacks": theirs_curve}, repeat, dev)))
        for attack, t in rows:
            ours, theirs = batch / min(t["cnnlens"]), batch / min(t["torchattacks"])
            paired = statistics.median(b / a for a, b in zip(t["cnnlens"], t["torchattacks"]))
            print(f"{name:14s} {batch:5d} {px:4d} {attack:9s} {ours:14.2f} {theirs:19.2f} {ours / theirs:6.2f} {paired:7.2f}")


if __name__ == "__main__":
    main()
