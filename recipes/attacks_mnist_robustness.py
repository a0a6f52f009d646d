"""Recipe: robustness curves of a normally and an adversarially trained MNIST CNN under FGSM and PGD.

    python recipes/attacks_mnist_robustness.py --out out/attacks_mnist \
        --data ../shared/data/mnist \
        --weights ../shared/data/mnist/mnist_lenet5_clntrained.pt \
        --weights ../shared/data/mnist/mnist_lenet5_advtrained.pt --limit 1000

(``../shared/data`` is the development data folder beside the checkout: the MNIST test set and
advertorch's two trained checkpoints of ``mnist-cnn``.) Writes `curve.png` (accuracy against eps,
both models, FGSM and PGD, all images and originally correct ones), `curves.json` (the numbers)
and `example_<weights>.png` (the first test digit of each model, FGSM at the largest eps, as the
panda figure). `--weights none` gives a random-init model (for smoke tests).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


import cnnlens  # noqa: E402
from cnnlens.attacks import attack, compare_robustness  # noqa: E402
from cnnlens.folders import labelled_folder  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--weights", action="append", default=None, help="repeat; 'none' for random init")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    parser.add_argument("--attacks", nargs="+", default=["fgsm", "pgd"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/attacks_mnist"))
    args = parser.parse_args(argv)
    weights = args.weights or [str(args.data / "mnist_lenet5_clntrained.pt"), str(args.data / "mnist_lenet5_advtrained.pt")]
    args.out.mkdir(parents=True, exist_ok=True)

    models = [cnnlens.create_model("mnist-cnn", w, seed=args.seed) for w in weights]
    curves = compare_robustness(models, args.data, eps=args.eps, attacks=args.attacks, steps=args.steps, limit=args.limit,
                                batch_size=args.batch_size, seed=args.seed)
    curves.save(args.out / "curve.png", overwrite=True)
    curves.save(args.out / "curves.json", overwrite=True)

    digit, label = labelled_folder(args.data, limit=1)[0]  # MNIST test image 0 as pixels, and its label
    for w, model in zip(weights, models):
        example = attack(model, digit, label, eps=max(args.eps))
        example.save(args.out / f"example_{Path(w).stem}.png", overwrite=True)
    return curves.to_dict()


if __name__ == "__main__":
    for r in main()["results"]:
        print(r["weights"], "clean", round(r["clean_accuracy"], 3), {k: [round(a, 3) for a in c["accuracy"]] for k, c in r["curves"].items()})
