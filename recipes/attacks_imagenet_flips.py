"""Recipe: how many correctly classified ImageNet samples does FGSM at eps = 0.007 flip?

    python recipes/attacks_imagenet_flips.py --out out/attacks_imagenet \
        --model mobilenet_v2 --weights ../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth \
        --data ../shared/data/imagenet_samples

(``../shared/data`` is the development data folder beside the checkout: trained weights and 1,000
labelled ImageNet validation samples.) Writes `flips.json` (clean accuracy, the share of the
originally correct images flipped at each eps, and for each image its class and confidence in the
true class before and after the largest eps) and `confidence.png` (confidence in the true class
before and after the attack, for the originally correct images). `--every K` keeps every K-th
image; `--weights none` gives a random-init model (for smoke tests).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cnnlens  # noqa: E402
from cnnlens.attacks import attack, robustness  # noqa: E402
from cnnlens.folders import labelled_folder  # noqa: E402
from cnnlens.results import jsonable  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--weights", default="../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--eps", type=float, nargs="+", default=[0.001, 0.002, 0.004, 0.007])
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/attacks_imagenet"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cnnlens.create_model(args.model, args.weights, seed=args.seed)
    data = labelled_folder(args.data)
    data = data.subset(range(0, len(data), args.every))
    curve = robustness(model, data, eps=[0.0, *args.eps], batch_size=args.batch_size)  # the flip rate at every eps

    # per image at the largest eps: its classes, and the probability of the true class before and after
    rows = []
    for start in range(0, len(data), args.batch_size):
        stop = min(start + args.batch_size, len(data))
        r = attack(model, data.paths[start:stop], data.labels[start:stop], eps=max(args.eps))  # files: resized and cropped for the model
        rows += [{"file": data.paths[start + k].name, **row} for k, row in enumerate(r.rows())]

    summary = {
        **curve.to_dict(),
        "flipped_share": {f"{e:g}": curve["fgsm"].flipped[i] for i, e in enumerate(curve.eps) if e > 0},
        "images": rows,
    }
    (args.out / "flips.json").write_text(json.dumps(jsonable(summary), indent=2))

    correct = [r for r in rows if r["clean_class"] == r["label"]]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter([r["label_probability_clean"] for r in correct], [r["label_probability_adversarial"] for r in correct], s=8, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("p(true class), clean")
    ax.set_ylabel(f"p(true class), FGSM eps={max(args.eps):g}")
    share = summary["flipped_share"][f"{max(args.eps):g}"]
    ax.set_title(f"{curve.label}: {100 * (share or 0):.1f} % of {curve.n_correct} correct flipped", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "confidence.png", dpi=100)
    plt.close(fig)
    return summary


if __name__ == "__main__":
    s = main()
    print(f"{s['model']}: {s['n']} images, clean {s['clean_accuracy']:.3f}, flipped share of correct: {s['flipped_share']}")
