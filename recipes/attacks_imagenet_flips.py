"""Recipe: how many correctly classified ImageNet samples does FGSM at eps = 0.007 flip?

    python recipes/attacks_imagenet_flips.py --out out/attacks_imagenet \
        --model mobilenet_v2 --weights ../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth \
        --data ../shared/data/imagenet_samples

Writes `flips.json` (clean accuracy, share of the originally correct images flipped at each eps,
and for each image its clean and adversarial class and confidence) and `confidence.png` (confidence in
the true class before and after the attack, for the originally correct images). `--every K` keeps
every K-th image; `--weights none` gives a random-init model (for smoke tests).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnlens.attacks import batches, fgsm, labelled_folder, load_attack_model  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--weights", default="../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--eps", type=float, nargs="+", default=[0.001, 0.002, 0.004, 0.007])
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("out/attacks_imagenet"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    am = load_attack_model(args.model, None if args.weights == "none" else args.weights)
    data = labelled_folder(args.data, transform=am.image)
    data = data.subset(range(0, len(data), args.every))
    rows, flipped = [], {e: 0 for e in args.eps}
    for x, y in batches(data, args.batch_size):
        with torch.no_grad():
            p_clean = F.softmax(am.model(x), 1)
        ok = p_clean.argmax(1) == y
        for e in args.eps:
            adv = fgsm(am.model, x, y, eps=e)
            with torch.no_grad():
                p_adv = F.softmax(am.model(adv), 1)
            flipped[e] += int((ok & (p_adv.argmax(1) != y)).sum())
            if e == max(args.eps):
                for i in range(len(y)):
                    rows.append({"label": int(y[i]), "clean_class": int(p_clean[i].argmax()), "clean_p_true": float(p_clean[i, y[i]]),
                                 "adv_class": int(p_adv[i].argmax()), "adv_p_true": float(p_adv[i, y[i]])})
    n_correct = sum(r["clean_class"] == r["label"] for r in rows)
    summary = {
        "model": args.model, "weights": args.weights, "n": len(rows), "n_correct": n_correct,
        "clean_accuracy": n_correct / max(len(rows), 1),
        "flipped_share": {str(e): flipped[e] / n_correct if n_correct else None for e in args.eps},
        "images": rows,
    }
    (args.out / "flips.json").write_text(json.dumps(summary, indent=2))

    correct = [r for r in rows if r["clean_class"] == r["label"]]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter([r["clean_p_true"] for r in correct], [r["adv_p_true"] for r in correct], s=8, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("p(true class), clean")
    ax.set_ylabel(f"p(true class), FGSM eps={max(args.eps):g}")
    ax.set_title(f"{args.model}: {100 * (summary['flipped_share'][str(max(args.eps))] or 0):.1f} % of {n_correct} correct flipped")
    fig.tight_layout()
    fig.savefig(args.out / "confidence.png", dpi=100)
    plt.close(fig)
    return summary


if __name__ == "__main__":
    s = main()
    print(f"{s['model']}: {s['n']} images, clean {s['clean_accuracy']:.3f}, flipped share of correct: {s['flipped_share']}")
