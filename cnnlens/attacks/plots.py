"""Figures for attacks (matplotlib only, ``Figure`` objects, nothing shown).

- :func:`plot_attack`: Goodfellow et al.'s panda figure: image + ε × sign(∇) = adversarial image.
- :func:`plot_robustness`: accuracy against ε, one colour per attack (and per model), solid for all
  images, dashed for the images the model got right unattacked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .adversarial import AttackResult
    from .curves import RobustnessResult

__all__ = ["format_eps", "plot_attack", "plot_robustness"]


def format_eps(eps: float) -> str:
    """``0.3`` -> ``"0.3"``, ``0.0313725`` -> ``"8/255"``, ``0.007`` -> ``"0.007"``: short decimals first."""
    if eps == 0:
        return "0"
    if abs(round(eps, 3) - eps) < 1e-12:
        return f"{eps:g}"
    k = eps * 255
    if abs(k - round(k)) < 1e-6 and round(k) > 0:
        return f"{round(k)}/255"
    return f"{eps:.4g}"


def _hwc(image: torch.Tensor):  # noqa: ANN202
    img = image.detach().float().cpu().clamp(0, 1)
    if img.dim() == 4:
        img = img[0]
    arr = img.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def plot_attack(result: AttackResult, index: int = 0, *, title: str | None = None) -> Figure:
    """The panda figure for image ``index`` of ``result``: x, the magnified perturbation, x_adv.

    The middle panel is ``sign(∇x J)`` mapped from [-1, 1] to [0, 1] for FGSM, and the whole
    perturbation divided by ε (same mapping) for iterative attacks. The title names the model and
    its weights ("random init" when so); the last panel also gives the class of the image rounded
    to 8 bits, as a saved file holds it.
    """
    from matplotlib.figure import Figure

    if not 0 <= index < result.adversarial.shape[0]:
        from ..errors import CnnlensError

        raise CnnlensError(f"index {index} out of range: the result holds {result.adversarial.shape[0]} images", param="index")
    x = result.original[index]
    adv = result.adversarial[index]
    if result.gradient_sign is not None:
        middle = result.gradient_sign[index]
        middle_title = "sign(∇ₓ J(θ, x, y))" if result.target is None else "−sign(∇ₓ J(θ, x, target))"
    else:
        middle = result.perturbation[index] / max(result.eps, 1e-12)
        middle_title = f"(x_adv − x) / ε, {result.kind}, {result.steps} steps"
    grey = x.shape[0] == 1
    c, a, s = int(result.clean_class[index]), int(result.adversarial_class[index]), int(result.saved_class[index])
    name = result.info.category
    eps = format_eps(result.eps)
    fig = Figure(figsize=(12, 4.9), layout="constrained")
    axes = fig.subplots(1, 5, width_ratios=[1, 0.14, 1, 0.1, 1])
    saved = f"8-bit image: “{name(s)}” {100 * float(result.saved_probability[index]):.1f} %"
    panels = [
        (axes[0], x, f"x\n“{name(c)}”\n{100 * float(result.clean_probability[index]):.1f} % confidence"),
        (axes[2], (middle + 1) / 2, f"{middle_title}\n(magnified: −1 black, +1 white)"),
        (axes[4], adv, f"x_adv\n“{name(a)}”\n{100 * float(result.adversarial_probability[index]):.1f} % confidence\n{saved}"),
    ]
    for ax, img, text in panels:
        small = min(img.shape[-2:]) < 64
        ax.imshow(_hwc(img), cmap="gray" if grey else None, vmin=0, vmax=1, interpolation="nearest" if small else "antialiased")
        ax.set_title(text, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, text in ((axes[1], f"+ {eps} ×"), (axes[3], "=")):
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, transform=ax.transAxes)
    if result.target is not None:
        t = int(result.target[index])
        verdict = "reached" if bool(result.success[index]) else "not reached"
        head = f"targeted at “{name(t)}”: {verdict}"
    else:
        head = "label flipped" if bool(result.success[index]) else "label kept"
        if result.label_given:
            head = f"true class “{name(int(result.labels[index]))}”: {head}"
    default = f"{result.info.label}: {result.kind} adversarial example, L∞ budget ε = {eps}: {head}"
    fig.suptitle(title or default, fontsize=12)
    return fig


def plot_robustness(
    results: RobustnessResult | Sequence[RobustnessResult] | Mapping[str, RobustnessResult],
    *,
    on_correct: bool = True,
    title: str | None = None,
) -> Figure:
    """Accuracy against ε; several results (models) and their attacks share one axis.

    Solid lines: accuracy on all images; dashed (``on_correct``): on the originally correct images.
    """
    from matplotlib.figure import Figure

    if isinstance(results, Mapping):
        items = list(results.items())
    elif isinstance(results, Sequence):
        one_name = len({r.info.name for r in results}) == 1
        items = [(r.info.weights_label if one_name else r.label, r) for r in results]  # one architecture: the weights tell them apart
    else:
        items = [("", results)]
    n_curves = sum(len(r.curves) for _, r in items) * (2 if on_correct else 1)
    fig = Figure(figsize=(8.5, 4.8 + (0.1 * n_curves if n_curves > 4 else 0)), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray"]
    markers = {"fgsm": "o", "ifgsm": "s", "pgd": "^"}
    k = 0
    grid: list[float] = []
    for name, res in items:
        for attack, curve in res.curves.items():
            colour = colours[k % len(colours)]
            k += 1
            steps = "" if attack == "fgsm" else f"-{res.steps}"
            label = f"{name + ': ' if name else ''}{attack.upper()}{steps}"
            ax.plot(res.eps, curve.accuracy, marker=markers.get(attack, "o"), color=colour, label=label)
            if on_correct:
                ax.plot(res.eps, curve.accuracy_on_correct, marker=markers.get(attack, "o"), color=colour,
                        linestyle="--", alpha=0.7, markerfacecolor="none", label=f"{label}, originally correct")
            grid = sorted(set(grid) | set(res.eps))
    ax.set_xticks(grid)
    ax.set_xticklabels([format_eps(e) for e in grid], rotation=45 if len(grid) > 8 else 0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("ε (L∞, pixel units in [0, 1])")
    ax.set_ylabel("top-1 accuracy")
    ax.grid(True, alpha=0.3)
    if len(ax.get_lines()) > 4:  # many curves: the legend goes below the axes, not over them
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncol=2, frameon=False)
    else:
        ax.legend(fontsize=8, loc="best")
    sizes = sorted({r.n for _, r in items})
    if title is None:
        names = sorted({r.info.name for _, r in items})
        head = items[0][1].label if len(items) == 1 else (names[0] if len(names) == 1 else ", ".join(names[:3]) + ("..." if len(names) > 3 else ""))
        source = next((r.data.get("source") for _, r in items if r.data.get("source")), None)
        where = f" on {Path(source).name}" if source and Path(source).name else ""
        title = f"{head}: accuracy against ε{where}"
    ax.set_title(f"{title}\n({'/'.join(map(str, sizes))} images; dashed: originally correct only)", fontsize=11)
    return fig
