"""Recipe: robustness curves of a normally and an adversarially trained MNIST LeNet5 under FGSM and PGD.

    python recipes/attacks_mnist_robustness.py --out out/attacks_mnist \
        --data ../shared/data/mnist \
        --weights ../shared/data/mnist/mnist_lenet5_clntrained.pt \
        --weights ../shared/data/mnist/mnist_lenet5_advtrained.pt --limit 1000

Writes `curve.png` (accuracy against eps, both models, FGSM and PGD, all images and originally
correct ones), `curves.json` (the numbers) and `examples.png` (one digit per model, FGSM at the
largest eps, as the panda figure). `--weights none` gives a random-init model (for smoke tests).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from cnnlens.attacks import attack, batches, labelled_folder, load_attack_model, plot_attack, plot_robustness, robustness  # noqa: E402


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

    results = []
    for w in weights:
        am = load_attack_model("lenet5-mnist", None if w == "none" else w)
        data = labelled_folder(args.data, limit=args.limit, transform=am.image)
        res = robustness(am.model, batches(data, args.batch_size), eps=args.eps, attacks=args.attacks, steps=args.steps,
                         generator=torch.Generator().manual_seed(args.seed), label=Path(w).stem)
        results.append(res)
        x, y = data[0]
        fig = plot_attack(attack(am.model, x, y, eps=max(args.eps), categories=am.categories),
                          title=f"{Path(w).stem}: FGSM at eps={max(args.eps):g} on MNIST test image 0")
        fig.savefig(args.out / f"example_{Path(w).stem}.png", dpi=90)

    plot_robustness(results, title="MNIST LeNet5: accuracy against ε").savefig(args.out / "curve.png", dpi=100)
    summary = {r.label: r.to_dict() for r in results}
    (args.out / "curves.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    for label, r in main().items():
        print(label, "clean", r["clean_accuracy"], {k: [round(a, 3) for a in c["accuracy"]] for k, c in r["curves"].items()})
