"""``attribute()``: where in the image the network found its evidence for a class, by several methods,
with the class names and probabilities; the :class:`Attribution` result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..address import LOGITS, Unit, resolve_unit
from ..checks import check_int, check_seed
from ..errors import CnnlensError, did_you_mean
from ..folders import iter_batches, select_images
from ..outputs import RESULT_SUFFIXES, check_output, save_text
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing, as_pixels, default_fit
from ..progress import progress_bar
from ..registry import ModelInfo, model_info
from ..results import Result, jsonable
from ..seeds import seeded
from .faithfulness import CURVES, Faithfulness, deletion_insertion
from .methods import CAM_METHODS, AttributionSettings, Attributor, check_methods
from .sanity import RandomizationTest, randomization_test
from .spatial import Grid

__all__ = ["INDEX_NAME", "Attribution", "attribute", "figure_names", "resolve_targets"]

INDEX_NAME = "index.json"
TOP = "top"

Target = int | str | Unit | None


def _one_target(value: Any, net: nn.Module, categories: Sequence[str] | None, num_classes: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CnnlensError(f"target must be a class index, a class name, logits:CLASS or top, not {value!r}", param="target")
    if isinstance(value, int):
        unit: Unit | str = Unit(LOGITS, value)
    elif isinstance(value, Unit):
        unit = value
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() == TOP:
            return None
        names = {c.lower() for c in categories or ()}
        if text.lstrip("-").isdigit():
            unit = Unit(LOGITS, int(text))
        elif ":" in text and text.lower() not in names:
            unit = text  # logits:CLASS (or a layer address, refused below)
        else:
            unit = Unit(LOGITS, None, None, text)
    else:
        raise CnnlensError(f"target must be a class index, a class name, logits:CLASS or top, not {type(value).__name__}", param="target")
    if isinstance(unit, Unit) and unit.channel is not None and unit.channel < 0:
        raise CnnlensError(f"target: class {unit.channel} out of range; classes start at 0", param="target")
    resolved = resolve_unit(unit, net, categories=list(categories) if categories else None, num_classes=num_classes, name="target")
    if not resolved.is_logits:
        raise CnnlensError(f"target {value!r} is a layer; give a class: an index, a name, logits:CLASS or top", param="target")
    return int(resolved.channel)  # type: ignore[arg-type]


def resolve_targets(target: Any, model: nn.Module) -> list[int | None]:
    """Targets as class indices, ``None`` where an image takes its top class.

    ``target`` is ``"top"`` (or None), a class index, a class name (any case), ``logits:CLASS``, a
    :class:`~cnnlens.Unit`, or a list or tensor of these, one per image. Names are checked against the
    model's class names (with the closest names on a miss) and indices against their number, when known.
    """
    net, _ = unwrap(model)
    info = model_info(model)
    cats = info.categories
    n = len(cats) if cats else None
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.dtype == torch.bool:
            raise CnnlensError(f"target must be class indices, not a {target.dtype} tensor", param="target")
        target = target.reshape(-1).tolist()
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    if not items:
        raise CnnlensError("target is an empty list", param="target")
    return [_one_target(v, net, cats, n) for v in items]


def figure_names(image_names: Sequence[str], suffix: str = ".png") -> list[str]:
    """One figure file name per image: its file's stem, with as many parent folders joined by ``_``
    as it takes to tell two images apart (``cat.png``, ``train_cat.png`` beside ``val_cat.png``);
    pixels given as a tensor are ``image0``, ``image1``..."""
    parts = [(f"image{n[7:-1]}",) if n.startswith("images[") else Path(n).with_suffix("").parts for n in image_names]
    depth = max((len(p) for p in parts), default=1)
    stems = [p[-1] for p in parts]
    for k in range(1, depth + 1):
        stems = ["_".join(p[-k:]) for p in parts]
        if len(set(stems)) == len(stems):
            break
    else:
        stems = [f"{i:05d}-{s}" for i, s in enumerate(stems)]
    safe = ["".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s) for s in stems]
    return [s + suffix for s in safe]


@dataclass(repr=False)
class Attribution(Result):
    """What :func:`attribute` returns.

    Attributes:
        images: ``(N, C, H, W)`` the pixels the model saw (resized and cropped), on the CPU.
        by_method: ``by_method[method]`` is the ``(N, H, W)`` map of that method, in the images' pixel
            space, on the CPU (see :mod:`cnnlens.attribution.methods` for each method's units).
        methods: the methods, in the order asked.
        layer: the layer of the class-activation methods (None when none was asked) and ``grid`` how
            its output was read (channels first or last, tokens).
        targets: ``(N,)`` the class each map explains; ``target_given``: per image, whether it was
            given (else the model's top class).
        probabilities: ``(N, classes)`` softmax of the model's output on the images.
        ig_delta: integrated gradients' completeness error per image (captum's convergence delta:
            ``sum(map) - (y(x) - y(baseline))``), when that method ran.
        relu_calls: ReLU-family calls the guided rule took (guided methods; 0: they equal the gradient).
        faithfulness: deletion/insertion curves (:class:`Faithfulness`) when asked.
        sanity: the cascading randomization test (:class:`RandomizationTest`) when asked.
    """

    info: ModelInfo
    images: torch.Tensor
    image_names: list[str]
    methods: tuple[str, ...]
    by_method: dict[str, torch.Tensor]
    layer: str | None
    grid: Grid | None
    targets: torch.Tensor
    target_given: list[bool]
    probabilities: torch.Tensor
    settings: AttributionSettings = field(repr=False)
    preprocessing: Preprocessing = field(repr=False)
    ig_delta: torch.Tensor | None = None
    relu_calls: int | None = None
    seed: int | None = None
    faithfulness: Faithfulness | None = None
    sanity: RandomizationTest | None = None
    warnings: list[str] = field(default_factory=list)

    # -- maps and classes ------------------------------------------------------------------------------
    @property
    def maps(self) -> torch.Tensor:
        """``(N, H, W)``: the maps of the first method asked (``by_method`` holds every method's)."""
        return self.by_method[self.methods[0]]

    def __getitem__(self, method: str) -> torch.Tensor:
        """``result["gradcam"]``: that method's ``(N, H, W)`` maps."""
        (key,) = check_methods(method)
        if key not in self.by_method:
            raise CnnlensError(f"method {method!r} was not computed; this result has {', '.join(self.methods)}", param="method")
        return self.by_method[key]

    @property
    def target_names(self) -> list[str]:
        return [self.info.category(int(t)) for t in self.targets]

    @property
    def target_probability(self) -> torch.Tensor:
        """``(N,)`` softmax probability of each image's target class."""
        return self.probabilities.gather(1, self.targets.view(-1, 1))[:, 0]

    @property
    def predicted(self) -> torch.Tensor:
        """``(N,)`` the model's top class per image."""
        return self.probabilities.argmax(1)

    @property
    def predicted_names(self) -> list[str]:
        return [self.info.category(int(t)) for t in self.predicted]

    @property
    def predicted_probability(self) -> torch.Tensor:
        return self.probabilities.amax(1)

    # -- the result protocol -------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per image: classes, probabilities, and each map's range and peak."""
        out = []
        w = self.images.shape[-1]
        for i, name in enumerate(self.image_names):
            maps = {}
            for m in self.methods:
                a = self.by_method[m][i]
                peak = int(a.reshape(-1).argmax())
                maps[m] = {"min": float(a.min()), "max": float(a.max()), "peak": [peak // w, peak % w]}
            row: dict[str, Any] = {
                "image": name,
                "target": int(self.targets[i]),
                "target_name": self.target_names[i],
                "target_given": self.target_given[i],
                "target_probability": float(self.target_probability[i]),
                "predicted": int(self.predicted[i]),
                "predicted_name": self.predicted_names[i],
                "predicted_probability": float(self.predicted_probability[i]),
                "maps": maps,
            }
            if self.ig_delta is not None:
                row["ig_completeness_error"] = float(self.ig_delta[i])
            if self.faithfulness is not None:
                f = self.faithfulness
                row["auc"] = {c: {m: float(f.auc(c, m)[i]) for m in f.methods} for c in f.curves}
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        size = (self.images.shape[-2], self.images.shape[-1])
        return {
            **self.info.to_dict(),
            "methods": list(self.methods),
            "layer": self.layer,
            "layer_grid": self.grid.to_dict() if self.grid is not None else None,
            "image_size": list(size),
            "settings": self.settings.to_dict(self.methods, size),
            "seed": self.seed,
            "relu_family_calls": self.relu_calls,
            "images": self.rows(),
            "faithfulness": self.faithfulness.to_dict()["curves"] if self.faithfulness is not None else None,
            "sanity": _sanity_summary(self.sanity) if self.sanity is not None else None,
            "warnings": list(self.warnings),
        }

    def figure(self, index: int | None = None, *, max_images: int = 6, title: str | None = None) -> Any:
        """Image ``index`` with each method's map over it (and its deletion/insertion curves when
        computed); with no index, every image (up to ``max_images`` rows), the curves (the mean over
        the images when there are several) and the randomization test, when computed."""
        from .plots import plot_attribution, plot_overview

        if index is not None:
            return plot_attribution(self, check_int(index, "index", low=0, high=self.images.shape[0] - 1), title=title)
        if self.images.shape[0] == 1:
            return plot_attribution(self, 0, sanity=True, title=title)
        return plot_overview(self, max_images=max_images, title=title)

    def figure_paths(self, folder: str | Path) -> list[Path]:
        """Where :meth:`save_figures` writes each image's figure."""
        return [Path(folder) / n for n in figure_names(self.image_names)]

    def save_figures(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """One figure per image in ``folder`` and ``folder/index.json`` (``to_dict()`` with each
        image's figure file); returns the index's path. Nothing is written when a file exists
        without ``overwrite``."""
        import matplotlib.pyplot as plt

        folder = Path(folder).expanduser()
        paths = self.figure_paths(folder)
        for p in (*paths, folder / INDEX_NAME):
            check_output(p, overwrite=overwrite, suffixes=RESULT_SUFFIXES)
        folder.mkdir(parents=True, exist_ok=True)
        index = self.to_dict()
        for i, (path, row) in enumerate(zip(paths, index["images"])):
            fig = self.figure(i)
            try:
                fig.savefig(path, dpi=100)
            finally:
                plt.close(fig)
            row["figure"] = path.name
        import json

        text = json.dumps(jsonable(index), indent=2, allow_nan=False) + "\n"
        return save_text(text, folder / INDEX_NAME, overwrite=True, suffixes=(".json",))

    def to_text(self) -> str:
        """One line per image (the class explained and its probability), then the mean areas of the
        faithfulness curves and the last step of the randomization test, when computed."""
        from .plots import percent

        lines = []
        for i, name in enumerate(self.image_names):
            what = "target" if self.target_given[i] else "top class"
            line = f"{name}: {what} {self.target_names[i]} ({percent(self.target_probability[i])})"
            if self.target_given[i] and int(self.predicted[i]) != int(self.targets[i]):
                line += f"; top class {self.predicted_names[i]} ({percent(self.predicted_probability[i])})"
            lines.append(line)
        if self.faithfulness is not None:
            f = self.faithfulness
            for curve, means in f.mean_auc().items():
                better = "lower" if curve == "deletion" else "higher"
                parts = ", ".join(f"{m} {v:.3f}" for m, v in means.items())
                lines.append(f"{curve} area ({better} is better, mean of {len(f.image_names)}): {parts}")
        if self.sanity is not None:
            t = self.sanity
            parts = ", ".join(f"{m} {float(t.mean_curve(m)[-1]):.2f}" for m in t.methods)
            lines.append(f"rank correlation with the trained maps after re-initialising {len(t.blocks)} blocks: {parts}")
        return "\n".join(lines)

    def _summary(self) -> dict[str, Any]:
        from .plots import percent

        out: dict[str, Any] = {"model": self.info.label, "methods": list(self.methods), "layer": self.layer}
        if self.images.shape[0] == 1:
            out["target"] = f"{self.target_names[0]} ({percent(self.target_probability[0])})"
        else:
            out["images"] = self.images.shape[0]
        if self.faithfulness is not None:
            out["deletion auc"] = {m: round(v, 4) for m, v in self.faithfulness.mean_auc().get("deletion", {}).items()}
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def _sanity_summary(test: RandomizationTest) -> dict[str, Any]:
    full = test.to_dict()
    return {"blocks": full["blocks"], "methods": {m: {"mean": v["mean"], "std": v["std"]} for m, v in full["methods"].items()}}


def _sources(images: Any, prep: Preprocessing, fit: str | None, limit: int | None) -> tuple[list[str], Any]:
    """Image names and either a list of files (read batch by batch) or one tensor of pixels."""
    if isinstance(images, (str, Path)) or (isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, Path)) for i in images)):
        found = select_images(images, limit)
        return list(found), list(found.values())
    pixels = as_pixels(images, prep, fit=default_fit(images, fit))  # fit: already the rule's answer
    if pixels.shape[0] == 0:
        raise CnnlensError("images is an empty batch", param="images")
    if limit is not None:
        pixels = pixels[:limit]
    return [f"images[{i}]" for i in range(pixels.shape[0])], pixels


def _batches(source: Any, prep: Preprocessing, batch_size: int) -> Any:
    if isinstance(source, torch.Tensor):
        for start in range(0, source.shape[0], batch_size):
            yield list(range(start, min(source.shape[0], start + batch_size))), source[start : start + batch_size]
    else:
        yield from iter_batches(source, prep, batch_size=batch_size)


def attribute(
    model: nn.Module,
    images: Any,
    method: str | Sequence[str] = "gradcam",
    target: Any = TOP,
    layer: str | nn.Module | None = None,
    *,
    settings: AttributionSettings | None = None,
    checks: str | Sequence[str] = (),
    preprocessing: Preprocessing | None = None,
    size: int | None = None,
    limit: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> Attribution:
    """Attribution maps: where in each image the model found the evidence for a class.

    Args:
        model: an image classifier (``cnnlens.create_model(...)`` or any ``nn.Module`` returning
            logits); it is left exactly as it was.
        images: pixels in [0, 1]: a tensor ``(N, C, H, W)``/``(C, H, W)``, an image file, a folder
            (flat or class subfolders), a list of files, a PIL image or an array.
        method: one name or several: ``gradcam``, ``gradcam++``, ``guided-gradcam``, ``occlusion``,
            ``saliency``, ``integrated-gradients``, ``smoothgrad`` (and ``guided-backprop``).
        target: the class to explain: ``"top"`` (each image's predicted class), an index, a class
            name, ``logits:CLASS``, or one of these per image.
        layer: the layer of Grad-CAM and its variants (default: the last layer with a spatial output;
            token layers of vision transformers are reshaped to their grid).
        settings: :class:`AttributionSettings`: the methods' knobs (integration steps, SmoothGrad's
            noise, the occluding window), the checks' sizes, batch size and how images are cut.
        checks: also compute ``"faithfulness"`` (deletion and insertion curves with a random-map
            baseline, :func:`~cnnlens.attribution.deletion_insertion`) and/or ``"sanity"`` (the
            cascading model-randomization test, :func:`~cnnlens.attribution.randomization_test`).
        preprocessing: resize, crop and normalization (default: ``model_info(model).preprocessing``).
        size: square side to resize and centre-crop to instead of the preprocessing's.
        limit: use at most this many images (spread over a folder: :func:`cnnlens.folders.spread`).
        seed: SmoothGrad's noise, the random map, the order of equal pixels, the re-initialisation.
        progress: report progress (a bar on a terminal, a line every 10 s elsewhere).

    Returns:
        :class:`Attribution`: ``maps`` ``(N, H, W)`` of the first method, ``by_method`` every
        method's, the targets' class names and probabilities, and the curves and checks asked for.

    Example:
        >>> import cnnlens, torch
        >>> model = cnnlens.create_model("resnet18", seed=0)
        >>> r = attribute(model, torch.rand(2, 3, 64, 64), "gradcam", progress=False)
        >>> tuple(r.maps.shape), r.layer, len(r.target_names)
        ((2, 64, 64), 'layer4', 2)
    """
    methods = check_methods(method)
    settings = (settings or AttributionSettings()).checked()
    faithfulness, sanity = check_checks(checks)
    seed = check_seed(seed)
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    wanted_targets = resolve_targets(target, model)
    prep = image_preprocessing(model, preprocessing, size)
    names, source = _sources(images, prep, default_fit(images, settings.fit, size, prep), limit)
    n = len(names)
    if len(wanted_targets) not in (1, n):
        raise CnnlensError(f"target has {len(wanted_targets)} entries for {n} images", param="target")
    given = wanted_targets * n if len(wanted_targets) == 1 else wanted_targets
    engine = Attributor(model, prep, methods, layer, settings)
    parts: list[Any] = []
    pixels: list[torch.Tensor] = []
    with seeded(seed, engine.device), progress_bar(n, "attribution maps", enabled=progress, unit="image") as bar:
        for idx, x in _batches(source, prep, settings.batch_size):
            parts.append(engine(x, [given[i] for i in idx]))
            pixels.append(x.detach().float().cpu())
            bar.update(len(idx))
    by_method = {m: torch.cat([p.maps[m] for p in parts]) for m in methods}
    deltas = [p.ig_delta for p in parts if p.ig_delta is not None]
    result = Attribution(
        info=model_info(model),
        images=torch.cat(pixels),
        image_names=names,
        methods=methods,
        by_method=by_method,
        layer=engine.layer,
        grid=engine.grid,
        targets=torch.cat([p.targets for p in parts]),
        target_given=[t is not None for t in given],
        probabilities=torch.cat([p.probabilities for p in parts]),
        settings=settings,
        preprocessing=prep,
        ig_delta=torch.cat(deltas) if deltas else None,
        relu_calls=parts[0].relu_calls,
        seed=seed,
    )
    result.warnings.extend(_warnings(result))
    if faithfulness:
        result.faithfulness = deletion_insertion(model, result, steps=settings.faithfulness_steps, curves=CURVES, batch_size=max(settings.batch_size, 16), seed=seed, progress=progress)
    if sanity:
        result.sanity = randomization_test(model, result, max_blocks=settings.sanity_blocks, seed=seed, progress=progress)
    return result


CHECKS = ("faithfulness", "sanity")


def check_checks(checks: str | Sequence[str]) -> tuple[bool, bool]:
    """``(faithfulness, sanity)`` from ``checks`` (names of :data:`CHECKS`, or one comma list)."""
    items = [c.strip() for c in checks.split(",")] if isinstance(checks, str) else list(checks)
    for c in items:
        if c not in CHECKS:
            raise CnnlensError(f"checks: unknown check {c!r}{did_you_mean(str(c), CHECKS)}; one of {', '.join(CHECKS)}", param="checks")
    return "faithfulness" in items, "sanity" in items


def _warnings(result: Attribution) -> list[str]:
    notes = []
    if result.relu_calls == 0:
        notes.append(
            f"{result.info.name} has no ReLU-family nonlinearity: guided backprop (and guided Grad-CAM's guided part) equals the plain gradient"
        )
    for m in CAM_METHODS:
        if m in result.by_method:
            flat = result.by_method[m].flatten(1).amax(1) <= 0
            if bool(flat.any()):
                k = int(flat.sum())
                notes.append(
                    f"{m}: the map of {k} of {len(flat)} images is zero everywhere (no channel of {result.layer} "
                    "raises the class score); try another layer or target"
                )
    return notes
