"""Recipe: how receptive fields and cost grow through a network, for any models of the registry.

    python recipes/report_receptive_fields.py --out out/report vgg16 resnet50 inception_v3 googlenet

Takes any name of `cnnlens.list_models()` (torchvision models, `alexnet-paper`, `lenet5`, `mnist-cnn`,
`timm/NAME`) or `path/to/file.py:ClassName`. Writes `receptive_fields.png` (receptive field size
against the depth of each conv layer, with the input size marked), `cost.png` (MACs against
parameters), `reports.json` (model, source, input size and totals per model) and the per-layer table
of each model in `tables/NAME.csv`. Everything comes from `cnnlens.report`, computed on the meta device, so no weights are needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cnnlens  # noqa: E402


def conv_rf_curve(report: cnnlens.Report) -> list[int]:
    """Receptive field size (rows) of every convolution's output, in definition order."""
    return [
        row.receptive_field.size[0]
        for row in report.layers
        if row.type == "Conv2d" and isinstance(row.receptive_field, cnnlens.ReceptiveField)
    ]


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["vgg16", "resnet50", "googlenet", "inception_v3", "mobilenet_v2"])
    parser.add_argument("--out", type=Path, default=Path("out/report"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    reports = {name: cnnlens.report(name) for name in args.models}

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in reports.items():
        curve = conv_rf_curve(r)
        ax.plot(range(1, len(curve) + 1), curve, marker=".", label=f"{name} ({r.input_size[-1]} px input)")
    ax.set_xlabel("convolution, in definition order")
    ax.set_ylabel("receptive field (pixels)")
    ax.set_yscale("log")
    ax.axhline(224, color="grey", lw=0.8, ls="--")
    ax.text(1, 235, "224 px", color="grey", fontsize=8)
    ax.set_title("Theoretical receptive field of each conv layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "receptive_fields.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, r in reports.items():
        ax.scatter(r.totals.params / 1e6, r.totals.macs / 1e9)
        ax.annotate(name, (r.totals.params / 1e6, r.totals.macs / 1e9), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("GMACs per image")
    ax.set_title("Cost against size")
    fig.tight_layout()
    fig.savefig(args.out / "cost.png", dpi=120)
    plt.close(fig)

    summary = {}
    for name, r in reports.items():
        d = r.to_dict()
        summary[name] = {"source": d["source"], "input_size": d["input_size"], **d["totals"]}
        r.save(args.out / "tables" / f"{name.replace('/', '_').replace(':', '_')}.csv", overwrite=True)  # the per-layer table
    (args.out / "reports.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    for model, totals in main().items():
        print(f"{model:14s} {totals['params']:>12,} params {totals['macs'] / 1e9:7.3f} GMACs")
