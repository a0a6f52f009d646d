"""Recipe: what a network represents at each depth. CKA between layers, trained against random
initialisation, linear probes by depth, and 2-D maps of the images in each layer.

    python recipes/representations_by_depth.py --out out/representations \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/imagenet_samples

(`../shared/data` is the development data folder beside the checkout; any weights file of the model
and any folder of ImageNet photos named `nXXXXXXXX_*.JPEG` with a `labels.csv` of their class index
work.) Four questions, answered with the public API:

1. How similar are the layers of the trained network to each other? Debiased minibatch CKA of its
   stages -> `cka_trained.png`.
2. How much of that is the architecture, and how much is learned? CKA of each trained layer against
   the layers of the same architecture at random initialisation -> `cka_trained_vs_random.png`.
3. Where does the distinction "animal or not" (ImageNet classes 0-397 against 398-999) become
   linearly readable? Linear probes by depth, trained and random -> `probe.png`.
4. What do the images look like in each layer's feature space? PCA maps -> `embed.png`.

The numbers go to `summary.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cnnlens
from cnnlens.folders import labelled_folder

ANIMALS = range(0, 398)  # ImageNet's classes 0-397 are animals (WordNet order), 398-999 objects, food, scenes


def animal_labels(data: Path, out: Path) -> Path:
    """A labels CSV of the folder's images: 0 animal, 1 not (from its labels.csv of ImageNet class indices)."""
    rows = list(csv.DictReader((data / "labels.csv").open()))
    path = out / "animal_labels.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "class_index"])
        writer.writerows([r["filename"], 0 if int(r["class_index"]) in ANIMALS else 1] for r in rows)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--limit", type=int, default=None, help="only N images, spread over the folder")
    parser.add_argument("--layers", nargs="+", default=None, help="layers (default: ten stages by depth)")
    parser.add_argument("--batch-size", type=int, default=100, help="the minibatch of the CKA estimate")
    parser.add_argument("--seed", type=int, default=0, help="the folds of the probes and the random initialisation")
    parser.add_argument("--out", type=Path, default=Path("out/representations"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    trained = cnnlens.create_model(args.model, args.weights)
    random = cnnlens.random_init_like(trained, seed=args.seed)
    layers = args.layers or cnnlens.default_layers(trained, "representations")
    common = dict(limit=args.limit, batch_size=args.batch_size, progress=True)

    within = cnnlens.similarity(trained, args.data, layers_a=layers, debiased=True, **common)
    within.save(args.out / "cka_trained.png", overwrite=True)
    across = cnnlens.similarity(trained, args.data, layers_a=layers, model_b=random, debiased=True, **common)
    across.save(args.out / "cka_trained_vs_random.png", overwrite=True)

    dataset = labelled_folder(args.data, labels=animal_labels(args.data, args.out), limit=args.limit)
    probes = cnnlens.probe(trained, dataset, layers=layers, baseline=random, seed=args.seed, progress=True)
    probes.save(args.out / "probe.png", overwrite=True)
    maps = cnnlens.embed(trained, dataset, layers=layers[1::3] + [layers[-1]] if len(layers) > 4 else layers, progress=True)
    maps.save(args.out / "embed.png", overwrite=True)

    summary = {
        "model": cnnlens.model_info(trained).label,
        "images": within.n_images,
        "estimator": within.estimator,
        "layers": layers,
        "cka_neighbours": {f"{a}~{b}": within.value(a, b) for a, b in zip(layers, layers[1:])},
        "cka_first_last": within.value(layers[0], layers[-1]),
        "cka_trained_vs_random_same_layer": across.diagonal(),
        "probe_accuracy": {r.layer: r.accuracy for r in probes.rows},
        "probe_accuracy_random_init": {r.layer: r.accuracy for r in probes.baseline_rows or []},
        "probe_chance": probes.chance,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(within.to_text(), across.to_text(), probes.to_text(), sep="\n\n")
    return summary


if __name__ == "__main__":
    main()
