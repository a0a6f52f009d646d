"""Which model names each command takes, derived from the registry (the table in docs/models.md).

Every name is accepted by every command; a command that cannot apply to a model (an image command
on a network whose input is 64 feature maps, filters of a network without convolutions) refuses it
in one line. ``python -m cnnlens.cli.support > docs/models.md`` writes the table.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMMAND_ORDER", "support", "support_table"]

COMMAND_ORDER = (
    "layers", "report", "filters", "patches", "deconv", "visualize", "dream", "style", "invert", "fgsm", "robustness",
    "attribute", "tuning", "hierarchy", "invariance", "microscope",
)

YES, LAYERS, NO = "yes", "with layers", "no"

# representative models of the sources that are not listed one by one
_GROUPS = {
    "torchvision": "every torchvision classification model (`resnet18`, `vgg16`, ... 80 names)",
    "timm": "`timm/NAME` (with `pip install 'cnnlens[timm]'`; about 1,300 names)",
    "file": "`path/to/file.py:ClassName` (your own image classifier)",
}


def support(entry: Any, has_conv: bool, spatial: bool, known_layers: set[str]) -> dict[str, str]:
    """``{command: "yes" | "with layers" | "no"}`` for a registry entry.

    Args:
        has_conv: the model has an ``nn.Conv2d``.
        spatial: the model has a layer with a spatial (H x W) output.
        known_layers: capabilities with registered default layers (``"style"``, ``"content"`` ...).
    """
    images = entry.kind != "tensor"
    classifier = images and entry.kind == "classifier"
    row = {"layers": YES, "report": YES}
    row["filters"] = YES if has_conv else NO
    row["patches"] = YES if images and spatial else NO
    row["deconv"] = YES if images and spatial else NO
    row["visualize"] = YES if images else NO
    row["dream"] = (YES if has_conv else LAYERS) if images and spatial else NO
    row["style"] = (YES if has_conv else LAYERS) if images and spatial else NO
    row["invert"] = (YES if has_conv else LAYERS) if images else NO
    row["fgsm"] = YES if classifier else NO
    row["robustness"] = YES if classifier else NO
    row["attribute"] = YES if classifier else NO
    row["tuning"] = YES if images and spatial else NO
    row["hierarchy"] = YES if images and spatial else NO
    row["invariance"] = YES if images else NO
    row["microscope"] = YES if images and spatial else NO
    return row


def _probe(name: str) -> tuple[Any, bool, bool, set[str]]:
    import torch.nn as nn

    from ..registry import build_empty, get_entry, known_layers

    entry = get_entry(name)
    model = build_empty(name)
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    spatial = has_conv or any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    return entry, has_conv, spatial, set(known_layers(name))


def support_table() -> str:
    """The markdown table of docs/models.md."""
    from ..registry import known_layers, list_models

    lines = [
        "# Which models each command takes",
        "",
        "Generated from the registry by `python -m cnnlens.cli.support` (a test keeps it current).",
        "*yes*: the command runs; *with layers*: give the layers (`--layer`/`--content-layer`/`--style-layer`), the",
        "model has no defaults; *no*: the command refuses the model in one line (its input is not an image, or it",
        "has no convolution, spatial layer or class output).",
        "",
        "| model | source | " + " | ".join(COMMAND_ORDER) + " |",
        "|---|---|" + "---|" * len(COMMAND_ORDER),
    ]
    rows: list[tuple[str, str, dict[str, str]]] = []
    for name in list_models(source="teaching") + list_models(source="mnist"):
        entry, has_conv, spatial, known = _probe(name)
        rows.append((f"`{name}`", entry.source, support(entry, has_conv, spatial, known)))
    generic = support(type("E", (), {"kind": "classifier"})(), True, True, set())
    rows.append((_GROUPS["torchvision"], "torchvision", generic))
    rows.append((_GROUPS["timm"], "timm", generic))
    rows.append((_GROUPS["file"], "file", generic))
    for label, source, row in rows:
        lines.append(f"| {label} | {source} | " + " | ".join(row[c] for c in COMMAND_ORDER) + " |")
    styled = [n for n in list_models(source="torchvision") if {"style", "content"} <= set(known_layers(n))]
    lines += [
        "",
        f"The default layers of DeepDream, style transfer and inversion are hand-picked for {', '.join(f'`{n}`' for n in styled)}",
        "(Gatys et al.'s VGG layers, and measured choices for the others); any other model with a convolution takes a",
        "rule (`cnnlens.default_layers`): DeepDream the convolution two thirds of the way down, style up to five",
        "convolutions spread from the first to the last, content the one half way down.",
        "`cnnlens models --json` lists every name with its source, input size and whether pretrained weights exist.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(support_table(), end="")
