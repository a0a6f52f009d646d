"""Build a microscope site: every capability of cnnlens on chosen layers of one model, as pages.

Stages, each done only for what the site does not hold yet (see :mod:`cnnlens.microscope.store`):

1. the report and its figure, the first-layer filters (the model page);
2. ONE streaming pass over the images mining the top-k of every channel of every layer missing
   (:func:`cnnlens.units.top_patches_layers`), saved at intervals so a stopped build resumes;
3. per shown unit: its crops and their deconvnet (or guided) projections;
4. per layer: feature visualizations of the shown units, optimized together in batches;
5. per layer: tuning curves of the shown units (:func:`cnnlens.tuning.tuning_curves`);
6. attribution maps of a few of the images (:func:`cnnlens.attribution.attribute`);
7. the pages and the JSON beside them.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int, check_seed
from ..distributed import Checkpoint, Sharding, fingerprint, model_fingerprint, process_group
from ..errors import CnnlensError, did_you_mean
from ..images import save_image
from ..outputs import save_figure
from ..receptive_field import ReceptiveField
from ..registry import ModelInfo, model_info
from ..results import Result
from . import pages
from .assets import CSS, JS
from .store import SiteStore, slug

__all__ = ["DEFAULT_METHODS", "GRATING_BADGE_SHARE", "SITE_TUNING", "Site", "SiteSettings", "build_site", "site_layers"]

DEFAULT_METHODS = ("gradcam", "integrated-gradients")  # attribution maps on the images page
FEATVIS_BATCH = 16  # units optimized together
# the grating grid of the site's tuning curves: 12 orientations (15 degrees apart), 6 frequencies and 4
# phases are 288 gratings a unit -- a fifth of tuning_curves' default grid, which a deep layer's large
# receptive field makes slow; `tuning=` takes other tuning_curves arguments
SITE_TUNING = {"orientations": 12, "frequencies": 6, "phases": 4}
_TUNING_ARGUMENTS = {"orientations", "frequencies", "phases", "contrast", "contrasts", "window", "rectify", "osi_threshold", "batch_size"}
MINING_SAVE_EVERY = 30.0  # seconds between saves of the mining state
# a unit gets a tuning badge (simple, complex ..., OSI) on its card and page only when its best grating
# drives it to at least this share of its top activation on the images: a class read off one weak
# response says nothing about what the unit does
GRATING_BADGE_SHARE = 0.25


# modules whose output is another module's output seen again: normalizations, activations, pools...
_NOT_SHOWN = re.compile(
    r"(BatchNorm\dd|GroupNorm|LayerNorm\w*|InstanceNorm\dd|LocalResponseNorm|ReLU6?|LeakyReLU|PReLU|ELU|GELU|SiLU|Mish|Sigmoid|Hardswish|"
    r"Hardsigmoid|Hardtanh|Tanh|\w*Pool\dd|Dropout\w*|Identity|Flatten|Upsample\w*|Permute|StochasticDepth)"
)


def site_layers(model: nn.Module, n: int | None = 4, *, size: int | None = None) -> list[str]:
    """``n`` layers spread over the depth of ``model`` that a site can show: outputs ``(B, C, H, W)``
    with a local receptive field, not normalization, activation, pooling or dropout modules, at the
    shallowest depth of module names that has ``n`` of them (``features.N`` of squeezenet,
    ``layerN`` and ``conv1`` of a resnet). ``n=None``: every layer of that depth (four or more)."""
    from ..pixelnet import image_preprocessing, unwrap
    from ..reports import report

    net, _ = unwrap(model)
    prep = image_preprocessing(model, None, size)
    return _pick_layers(report(net, (1, prep.channels, prep.crop_size, prep.crop_size)).layers, n, model_info(model).name)


def _pick_layers(rows: Sequence[Any], n: int | None, name: str) -> list[str]:
    """:func:`site_layers` from the rows of the model's report."""
    candidates = [
        r for r in rows
        if r.output_shape is not None and len(r.output_shape) == 4 and isinstance(r.receptive_field, ReceptiveField)
        and not _NOT_SHOWN.fullmatch(r.type) and r.name
    ]  # fmt: skip
    if not candidates:
        raise CnnlensError(f"{name} has no layer with a (B, C, H, W) output and a local receptive field to show", param="layers")
    by_depth: dict[int, list[str]] = {}
    for r in candidates:
        by_depth.setdefault(r.name.count("."), []).append(r.name)
    wanted = 4 if n is None else n
    names = next((by_depth[d] for d in sorted(by_depth) if len(by_depth[d]) >= wanted), max(by_depth.values(), key=len))
    if n is None or len(names) <= n:
        return names
    picks = sorted({round(i * (len(names) - 1) / (n - 1)) for i in range(n)}) if n > 1 else [len(names) - 1]
    return [names[i] for i in picks]


@dataclass(repr=False)
class Site(Result):
    """What :func:`build_site` returns: where the site is, what it shows, what this build computed.

    Attributes:
        root: the site folder; ``index`` its model page (open it in a browser).
        layers: layer -> the channels that have a unit page.
        stages: per stage, what was computed now and what was reused from an earlier build, and
            the seconds it took.
        featvis: layer -> ``(U, C, H, W)`` the feature visualizations of the shown units (CPU), for
            :meth:`figure`.
    """

    root: Path
    info: ModelInfo
    layers: dict[str, list[int]]
    n_images: int
    pages: int
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    featvis: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "site": str(self.root),
            "index": str(self.index),
            "layers": {name: list(channels) for name, channels in self.layers.items()},
            "n_images": self.n_images,
            "pages": self.pages,
            "stages": self.stages,
            "warnings": list(self.warnings),
        }

    def figure(self, *, title: str | None = None) -> Any:
        """One row per layer: the feature visualizations of its shown units."""
        import matplotlib.pyplot as plt

        rows = [(name, images) for name, images in self.featvis.items() if images.numel()]
        if not rows:
            raise CnnlensError("the site has no feature visualizations to draw (featvis_steps=0)")
        ncols = max(images.shape[0] for _, images in rows)
        fig, axes = plt.subplots(len(rows), ncols, figsize=(1.3 * ncols, 1.45 * len(rows)), squeeze=False, layout="constrained")
        for r, (name, images) in enumerate(rows):
            for c in range(ncols):
                ax = axes[r][c]
                ax.axis("off")
                if c < images.shape[0]:
                    img = images[c].permute(1, 2, 0).numpy()
                    ax.imshow(img if img.shape[2] == 3 else img[..., 0], cmap=None if img.shape[2] == 3 else "gray")
                    ax.set_title(f"{name}:{self.layers[name][c]}", fontsize=7)
        fig.suptitle(title or f"{self.info.label}: feature visualizations of the site's units", fontsize=10)
        return fig

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.name,
            "weights": self.info.weights_label,
            "site": str(self.index),
            "layers": {name: len(c) for name, c in self.layers.items()},
            "pages": self.pages,
        }


# -- the build -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSettings:
    """What each stage of :func:`build_site` computes.

    - ``method``: projection of the patches: ``deconvnet``, ``guided``, ``gradient`` or None.
    - ``featvis_steps``: optimization steps of each feature visualization (0: none); ``featvis_size``
      its side (default 128, or the model's fixed input size).
    - ``tuning``: measure tuning curves with gratings (layers where that is possible), on a grid of
      12 orientations, 6 frequencies and 4 phases; a dict of :class:`cnnlens.tuning.Gratings` fields
      and :func:`cnnlens.tuning.tuning_curves` arguments measures with those instead.
    - ``attribution``: images on the attribution page (0: no page); ``attribution_methods`` its maps.
    - ``circuits``: on every unit page, the strongest connections by expanded weights: "built from"
      the site's layer before, "used by" the site's layer after (the classes after the last layer),
      each with its weight picture and a link to that unit's page (:mod:`cnnlens.circuits`).
    - ``representations``: a representations page: the debiased minibatch CKA of the site's layers
      and the output over its images, and linear probes by depth when the images carry labels
      (class subfolders, a labels CSV): :mod:`cnnlens.representations`.
    - ``relevance``: on every unit page, the unit's top patches by relevance beside those by
      activation (relevance maximization, Achtibat et al. 2023: a second pass explaining each
      image's top class with LRP, :mod:`cnnlens.relevance`) and the classes its relevance goes to
      most. Left out, with a note, for a model LRP cannot follow.
    - ``concepts``: a concepts page per layer with that many concepts (0: none): NMF of the layer's
      activations over the images (:func:`cnnlens.concepts.discover`), each concept with its top
      patches, the feature visualization of its direction (when ``featvis_steps``), its importance
      and the classes it raises most, and its strongest channels linked to their unit pages.
    - ``batch_size``, ``workers``: of the mining pass (see :class:`cnnlens.units.PatchSettings`).
    """

    method: str | None = "deconvnet"
    featvis_steps: int = 128
    featvis_size: int | None = None
    tuning: bool | dict[str, Any] = True
    attribution: int = 8
    attribution_methods: Sequence[str] = DEFAULT_METHODS
    representations: bool = True
    circuits: bool = True
    relevance: bool = True
    concepts: int = 0
    batch_size: int = 32
    workers: int = 0


def build_site(
    model: nn.Module,
    images: Any,
    output: str | Path,
    *,
    layers: str | Sequence[str] | None = None,
    units: int | str | Sequence[int] = 16,
    k: int = 9,
    settings: SiteSettings | None = None,
    limit: int | None = None,
    seed: int | None = 0,
    overwrite: bool = False,
    progress: bool = True,
    distributed: bool | None = None,
) -> Site:
    """Build (or complete) a static site of ``model`` on ``images`` in the folder ``output``.

    The site opens from the file system (``output/index.html``; no server, nothing fetched from
    a network): a model page (report table with receptive fields and costs, their plots, the
    first-layer filters), a page per layer with a grid of its units and a filter box, a page per
    unit (its top-k dataset patches cropped by the receptive field, their projections, its feature
    visualization, its tuning curves), an attribution page, links between neighbours, and the
    page's numbers as JSON beside every page.

    Run again on the same folder and only what is missing is computed: more ``units`` or
    ``layers`` add pages, a stopped build continues (the mining pass is saved every 30 s), and
    a changed setting (``featvis_steps``, ``method``...) recomputes that stage only. Under
    torchrun the pass over the images is shared among the processes (:mod:`cnnlens.distributed`);
    rank 0 makes the pictures and pages.

    Args:
        model: any image model (e.g. from :func:`cnnlens.create_model`); left exactly as it was.
        images: a folder (flat or class subfolders), image files, or pixels in [0, 1].
        output: the site folder: new, empty, or a site built earlier from the same model, weights
            and images (anything else is refused unless ``overwrite``).
        layers: layer names (default: four spread over the depth, :func:`site_layers`; ``"all"``:
            every layer of that depth).
        units: units per layer with a page: channels 0 to ``units - 1``; ``"all"``: every channel; a
            list of channels: those (of every layer that has them).
        k: top patches per unit.
        settings: :class:`SiteSettings`: what each stage computes (projections, feature
            visualizations, tuning, attribution) and the mining pass's batch size and threads.
        limit: use this many of the images (spread over the folder).
        seed: seeds the feature visualizations (and the attribution's random baselines).
        overwrite: rebuild a site of another model, weights or images (or everything afresh).
        progress: report progress on stderr.
        distributed: see :func:`cnnlens.distributed.run`.

    Raises:
        CnnlensError: unknown layers (with the closest names), layers without a local receptive
            field, bad numbers, unreadable images, an output folder holding something else -- before
            any work.
    """
    from ..folders import select_images
    from ..pixelnet import image_preprocessing, unwrap
    from ..units.deconv import check_methods

    s = settings or SiteSettings()
    method, featvis_steps, featvis_size, tuning = s.method, s.featvis_steps, s.featvis_size, s.tuning
    attribution, attribution_methods, batch_size, workers = s.attribution, s.attribution_methods, s.batch_size, s.workers
    every_unit = isinstance(units, str) and units.strip().lower() == "all"
    listed = None
    if isinstance(units, (list, tuple)):
        if not units:
            raise CnnlensError("units is empty; give a number of units, all, or channels", param="units")
        listed = sorted({check_int(u, "units", low=0, high=1_000_000) for u in units})
        units = max(listed) + 1
    units = 1_000_000 if every_unit else check_int(units, "units", low=1, high=1_000_000)
    k = check_int(k, "k", low=1, high=1000)
    featvis_steps = check_int(featvis_steps, "featvis_steps", low=0, high=100_000)
    attribution = check_int(attribution, "attribution", low=0, high=10_000)
    seed = check_seed(seed)
    if featvis_size is not None:
        featvis_size = check_int(featvis_size, "featvis_size", low=8, high=4096)
    if method is not None:
        (method,) = check_methods(method, "method")
    if isinstance(tuning, dict):
        unknown = sorted(set(tuning) - _TUNING_ARGUMENTS)
        if unknown:
            raise CnnlensError(f"tuning: {unknown[0]!r} is not a tuning_curves argument{did_you_mean(unknown[0], sorted(_TUNING_ARGUMENTS))}", param="tuning")
    if attribution:
        from ..attribution import check_methods as check_attribution_methods

        attribution_methods = tuple(check_attribution_methods(list(attribution_methods)))
    net, _ = unwrap(model)
    info = model_info(model)
    prep = image_preprocessing(model)
    if prep.channels not in (1, 3):
        raise CnnlensError(f"model: {info.name} takes {prep.channels}-channel input, not images (1 or 3 channels)", param="model")
    from ..reports import report

    side = int(prep.crop_size)  # type: ignore[arg-type]
    rep = report(net, (1, prep.channels, side, side))
    rows = {r.name: r for r in rep.layers}
    if layers is None or isinstance(layers, str) and layers.strip().lower() == "all" or (
        isinstance(layers, (list, tuple)) and [str(x).strip().lower() for x in layers] == ["all"]
    ):
        chosen = _pick_layers(rep.layers, 4 if layers is None else None, info.name)
    else:
        chosen = _check_layers(layers, rows)
    sources = select_images(images, limit)
    names = list(sources)
    pixels = [s for s in sources.values() if isinstance(s, torch.Tensor)]
    identity = {
        "model": info.name,
        "weights": info.weights_label,
        "model_sha256": model_fingerprint(net),
        "images_sha256": fingerprint(names, *pixels),
        "n_images": len(names),
        "input_size": [prep.channels, side, side],
        "preprocessing": prep.to_dict(),
        "k": k,
    }
    group = process_group(distributed)
    store = SiteStore(output)
    created = not store.root.exists()
    if group.main:
        try:
            store.open(identity, overwrite=overwrite)
        except OSError as exc:
            raise CnnlensError(f"output: cannot write the site to {store.root}: {exc.strerror or exc}", param="output") from None
    shown = {name: list(range(min(units, int(rows[name].output_shape[1])))) for name in chosen}  # type: ignore[index]
    if listed is not None:
        shown = {name: [c for c in listed if c < int(rows[name].output_shape[1])] for name in chosen}  # type: ignore[index]
        empty = [name for name, cs in shown.items() if not cs]
        if empty:
            raise CnnlensError(f"units: {empty[0]} has {rows[empty[0]].output_shape[1]} channels, none of those listed", param="units")
    plan = _Plan(model, net, info, rep, rows, shown, images, sources, limit, store, identity, group, progress)
    try:
        return _build(plan, k=k, method=method, featvis_steps=featvis_steps, featvis_size=featvis_size, tuning=tuning,
                      attribution=attribution, attribution_methods=attribution_methods, representations=bool(s.representations), circuits=bool(s.circuits),
                      relevance=bool(s.relevance), concepts=check_int(s.concepts, "concepts", low=0, high=4096),
                      batch_size=batch_size, workers=workers, seed=seed, distributed=distributed)  # fmt: skip
    except CnnlensError:
        if created and group.main:  # bad input found on the way (an unreadable image): leave nothing behind
            shutil.rmtree(store.root, ignore_errors=True)
        raise


@dataclass
class _Plan:
    """What every stage of one build reads, and what the stages report."""

    model: nn.Module
    net: nn.Module
    info: ModelInfo
    report: Any
    rows: dict[str, Any]  # layer name -> its row of the report
    shown: dict[str, list[int]]  # layer -> the channels with a unit page, in the order of the site
    images: Any
    sources: dict[str, Any]
    limit: int | None
    store: SiteStore
    identity: dict[str, Any]
    group: Any
    progress: bool
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[str]:
        return list(self.shown)

    def say(self, text: str) -> None:
        """A line on stderr naming what the next progress bar is about (``microscope: ...``)."""
        if self.progress and self.group.main:
            import sys

            print(f"microscope: {text}", file=sys.stderr, flush=True)

    def stage(self, name: str, start: float, **what: Any) -> None:
        self.stages[name] = {**what, "seconds": round(time.perf_counter() - start, 3)}


def _build(
    plan: _Plan, *, k: int, method: str | None, featvis_steps: int, featvis_size: int | None, tuning: bool | dict[str, Any], attribution: int,
    attribution_methods: Sequence[str], representations: bool, circuits: bool, relevance: bool, concepts: int, batch_size: int, workers: int,
    seed: int | None, distributed: bool | None,
) -> Site:  # fmt: skip
    store = plan.store
    mined = _mine(plan, k=k, batch_size=batch_size, workers=workers, distributed=distributed)  # all ranks: the pass over the data
    relevant = _mine_relevance(plan, k=k, batch_size=batch_size, workers=workers, distributed=distributed) if relevance else {}
    found = _concepts(plan, concepts, k=k, batch_size=batch_size, workers=workers, featvis_steps=featvis_steps, featvis_size=featvis_size,
                      seed=seed, distributed=distributed) if concepts else {}  # fmt: skip
    if not plan.group.main:
        return Site(root=store.root, info=plan.info, layers=plan.shown, n_images=len(plan.sources), pages=0, stages=plan.stages)
    has_filters = _model_pictures(plan)
    _patch_pictures(plan, mined, method)
    _patch_pictures(plan, relevant, None, kind="relevance")
    featvis = _featvis(plan, featvis_steps, featvis_size, seed)
    tuned = _tuning(plan, {**SITE_TUNING, **(tuning if isinstance(tuning, dict) else {})}) if tuning else {}
    attributed = _attribution(plan, attribution, attribution_methods, seed)
    represented = _representations(plan, batch_size, seed) if representations else None
    wired = _circuits(plan) if circuits else {}
    start = time.perf_counter()
    n_pages = _write_pages(plan, mined, tuned, featvis, attributed, represented, wired, method, has_filters=has_filters, relevant=relevant, concepts=found)
    plan.stage("pages", start, pages=n_pages)
    pictures = {name: _featvis_tensor(store, name, plan.shown[name]) for name in plan.layers} if featvis_steps else {}
    return Site(root=store.root, info=plan.info, layers=plan.shown, n_images=len(plan.sources), pages=n_pages, stages=plan.stages,
                featvis=pictures, warnings=plan.warnings)  # fmt: skip


def _check_layers(layers: str | Sequence[str], rows: dict[str, Any]) -> list[str]:
    from ..units.patches import check_patch_layer

    items = [layers] if isinstance(layers, str) else list(layers)
    items = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not items:
        raise CnnlensError("layers is empty; give layer names such as features.3", param="layers")
    out = []
    for name in dict.fromkeys(items):
        if name not in rows or not name:
            raise CnnlensError(f"layers: no layer {name!r}{did_you_mean(name, [n for n in rows if n])}", param="layers")
        check_patch_layer(name, rows[name].receptive_field, rows[name].output_shape, "layers")
        out.append(name)
    return out


def _images_text(images: Any, n: int) -> str:
    if isinstance(images, (str, Path)):
        return f"{n} images from {Path(images).expanduser().name or images}"
    return f"{n} images given in memory"


# -- stages --------------------------------------------------------------------------------------


def _mine(plan: _Plan, *, k: int, batch_size: int, workers: int, distributed: bool | None) -> dict[str, dict[str, Any]]:
    """layer -> the patches index of all its channels (:meth:`PatchResult.to_dict`)."""
    from ..units.patches import PatchSettings, top_patches_layers

    start, store, identity = time.perf_counter(), plan.store, plan.identity
    mined = {name: store.cached(f"mined/{slug(name)}.json", [identity, name]) for name in plan.layers}
    missing = plan.group.all_gather([name for name in plan.layers if mined[name] is None])[0]  # rank 0 says what is missing
    if missing:
        checkpoint = Checkpoint(store.state / "mining-checkpoint.json", every=MINING_SAVE_EVERY, replace=True, param="output")
        found = top_patches_layers(
            plan.model, missing, plan.images, k=k, n_channels=max(int(plan.rows[n].output_shape[1]) for n in missing), limit=plan.limit,
            settings=PatchSettings(batch_size=batch_size, workers=workers, crops=False), progress=plan.progress,
            sharding=Sharding(distributed=distributed, checkpoint=checkpoint),
        )  # fmt: skip
        for name in missing:
            mined[name] = found[name].to_dict()  # type: ignore[union-attr]
            if plan.group.main:
                store.cache(f"mined/{slug(name)}.json", [identity, name], mined[name])
        if plan.group.main:
            checkpoint.path.unlink(missing_ok=True)
    plan.stage("mining", start, computed=missing, reused=[n for n in plan.layers if n not in missing])
    return mined  # type: ignore[return-value]


def _mine_relevance(plan: _Plan, *, k: int, batch_size: int, workers: int, distributed: bool | None) -> dict[str, dict[str, Any]]:
    """layer -> the patches index of its shown units ranked by LRP relevance for each image's top
    class (with the classes each unit serves); empty, with a note, where LRP cannot follow the model."""
    from ..units.patches import PatchSettings, top_patches_layers

    start, store, identity = time.perf_counter(), plan.store, plan.identity
    key = [identity, plan.shown]
    mined = {name: store.cached(f"mined-relevance/{slug(name)}.json", [*key, name]) for name in plan.layers}
    missing = plan.group.all_gather([name for name in plan.layers if mined[name] is None])[0]
    note = None
    if missing:
        units = [f"{name}:{c}" for name in missing for c in plan.shown[name]]
        checkpoint = Checkpoint(store.state / "relevance-checkpoint.json", every=MINING_SAVE_EVERY, replace=True, param="output")
        try:
            found = top_patches_layers(
                plan.model, units, plan.images, k=k, limit=plan.limit,
                settings=PatchSettings(batch_size=batch_size, workers=workers, crops=False, by="relevance"), progress=plan.progress,
                sharding=Sharding(distributed=distributed, checkpoint=checkpoint),
            )  # fmt: skip
        except CnnlensError as exc:
            note = f"no relevance patches: {exc}"
            plan.warnings.append(note)
            plan.stage("relevance", start, computed=[], note=note)
            return {}
        for name in missing:
            mined[name] = found[name].to_dict()  # type: ignore[union-attr]
            if plan.group.main:
                store.cache(f"mined-relevance/{slug(name)}.json", [*key, name], mined[name])
        if plan.group.main:
            checkpoint.path.unlink(missing_ok=True)
    plan.stage("relevance", start, computed=missing, reused=[n for n in plan.layers if n not in missing])
    return mined  # type: ignore[return-value]


def _model_pictures(plan: _Plan) -> bool:
    """The report's figure and the first-layer filters; True when the filter plot exists."""
    start, store, made = time.perf_counter(), plan.store, []
    if not store.exists("img/report.png"):
        save_figure(plan.report.figure(), store.path("img/report.png"), overwrite=True, dpi=80)
        made.append("report")
    has_filters = store.exists("img/filters.png")
    if not has_filters:
        from ..units.filters import conv_filters

        try:
            save_figure(conv_filters(plan.model).figure(max_filters=64), store.path("img/filters.png"), overwrite=True, dpi=80)
            made.append("filters")
            has_filters = True
        except CnnlensError as exc:
            plan.warnings.append(f"no filter plot: {exc}")
    plan.stage("model", start, computed=made)
    return has_filters


def _unit_dir(layer: str, channel: int) -> str:
    return f"units/{slug(layer)}/{channel}"


def _patch_pictures(plan: _Plan, mined: dict[str, dict[str, Any]], method: str | None, *, kind: str = "patch") -> None:
    """Per shown unit, its crops (pictures named ``{kind}-{rank}.png``) and their projections
    (``method``); every image the missing ones come from is read once."""
    from ..units.patch_results import add_projections, extract_crops, load_index, patch_images
    from ..units.plots import signed_to_rgb

    start, store = time.perf_counter(), plan.store
    work = []  # (layer, result of the units to draw, units lacking crops, units lacking projections)
    for layer, channels in plan.shown.items():
        if layer not in mined:
            continue

        def missing(name: str) -> list[int]:
            return [c for c in channels if not store.exists(*(f"{_unit_dir(layer, c)}/{name}-{j}.png" for j in range(len(_patches_of(mined[layer], c)))))]

        need_crops, need_proj = missing(kind), missing(method) if method is not None else []
        todo = set(need_crops) | set(need_proj)
        if todo:
            index = {**mined[layer], "channels": [c for c in mined[layer]["channels"] if c["channel"] in todo]}
            result = load_index(index, crops=False)
            result.sources = plan.sources
            work.append((layer, result, need_crops, need_proj))
    images = patch_images(*(result for _, result, _, _ in work)) if work else {}
    for layer, result, need_crops, need_proj in work:
        if need_proj:
            subset = replace(result, channels=[c for c in result.channels if c in need_proj], patches={c: result.patches[c] for c in need_proj})
            plan.say(f"{method} projections of the patches of {layer}")
            add_projections(plan.model, subset, method=method, progress=plan.progress, images=images)  # type: ignore[arg-type]
            for c in need_proj:
                for j, g in enumerate(subset.projections[c]):
                    save_image(signed_to_rgb(g, percentile=99.5), store.path(f"{_unit_dir(layer, c)}/{method}-{j}.png"), overwrite=True)
        extract_crops(result, images)
        for c in need_crops:
            for j, crop in enumerate(result.crops[c]):
                save_image(crop, store.path(f"{_unit_dir(layer, c)}/{kind}-{j}.png"), overwrite=True)
    plan.stage("patches" if kind == "patch" else f"{kind} patches", start, computed={layer: len(set(nc) | set(np_)) for layer, _, nc, np_ in work}, method=method)


def _patches_of(index: dict[str, Any], channel: int) -> list[dict[str, Any]]:
    for c in index["channels"]:
        if c["channel"] == channel:
            return c["patches"]
    return []


def _featvis(plan: _Plan, steps: int, size: int | None, seed: int | None) -> dict[str, dict[str, Any]]:
    """Feature visualizations of the shown units, a batch of units at a time: layer -> {"settings", "values": {channel: objective}}."""
    from ..featvis import render

    t0, store = time.perf_counter(), plan.store
    out: dict[str, dict[str, Any]] = {}
    computed: dict[str, int] = {}
    if steps == 0:
        plan.stage("featvis", t0, computed={})
        return out
    settings = {"steps": steps, "size": size, "seed": seed, "batch": FEATVIS_BATCH}
    for layer, channels in plan.shown.items():
        name = f"featvis/{slug(layer)}.json"
        values = {int(c): v for c, v in (store.cached(name, [settings, layer]) or {}).items()}
        todo = [c for c in channels if c not in values or not store.exists(f"{_unit_dir(layer, c)}/featvis.png")]
        for start in range(0, len(todo), FEATVIS_BATCH):
            chunk = todo[start : start + FEATVIS_BATCH]
            plan.say(f"feature visualizations of {layer}, units {', '.join(map(str, chunk))}")
            result = render(plan.model, [f"{layer}:{c}" for c in chunk], steps=steps, size=size, seed=None if seed is None else seed + chunk[0], progress=plan.progress)
            for c, image, value in zip(chunk, result.images, result.values.tolist()):
                save_image(image, store.path(f"{_unit_dir(layer, c)}/featvis.png"), overwrite=True)
                values[c] = value
            store.cache(name, [settings, layer], values)
        computed[layer] = len(todo)
        out[layer] = {"settings": settings, "values": values}
    plan.stage("featvis", t0, computed=computed)
    return out


def _concepts(
    plan: _Plan, n: int, *, k: int, batch_size: int, workers: int, featvis_steps: int, featvis_size: int | None, seed: int | None,
    distributed: bool | None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """layer -> its concepts (:meth:`cnnlens.concepts.Concepts.to_dict`), with each concept's crops
    (``concepts/LAYER/I/patch-J.png``) and feature visualization (``featvis.png``) saved."""
    from ..concepts import ConceptSettings, discover
    from ..units.patch_results import extract_crops

    t0, store = time.perf_counter(), plan.store
    settings = {"n": n, "k": k, "steps": featvis_steps, "size": featvis_size, "seed": seed}
    out: dict[str, dict[str, Any]] = {}
    computed = []
    for layer in plan.layers:
        name = f"concepts/{slug(layer)}.json"
        cached = store.cached(name, [plan.identity, settings, layer])
        if plan.group.all_gather(cached is not None)[0]:  # rank 0 says what is done (only rank 0 writes pages)
            if cached is not None:
                out[layer] = cached
            continue
        count = min(n, int(plan.rows[layer].output_shape[1]))
        plan.say(f"{count} concepts of {layer}")
        found = discover(
            plan.model, plan.images, layer=layer, n=count, k=k, limit=plan.limit, seed=0 if seed is None else seed, progress=plan.progress,
            settings=ConceptSettings(batch_size=batch_size, workers=workers, visualize=featvis_steps > 0, steps=max(1, featvis_steps),
                                     render_size=featvis_size or 128),
            sharding=Sharding(distributed=distributed),
        )  # fmt: skip
        data = found.to_dict()
        if plan.group.main:
            found.patches.sources = plan.sources
            extract_crops(found.patches)
            for i in range(found.n):
                for j, crop in enumerate(found.patches.crops.get(i, [])):
                    save_image(crop, store.path(f"concepts/{slug(layer)}/{i}/patch-{j}.png"), overwrite=True)
                if found.visualizations is not None:
                    save_image(found.visualizations[i], store.path(f"concepts/{slug(layer)}/{i}/featvis.png"), overwrite=True)
            data["has_featvis"] = found.visualizations is not None
            store.cache(name, [plan.identity, settings, layer], data)
        out[layer] = data
        computed.append(layer)
    plan.stage("concepts", t0, computed=computed, reused=[n for n in plan.layers if n not in computed])
    return out


def _concepts_data(plan: _Plan, layer: str, found: dict[str, Any]) -> dict[str, Any]:
    """The concepts page of a layer: the concepts with their pictures and links to the unit pages of their channels."""
    s = slug(layer)
    shown = set(plan.shown[layer])
    rows = []
    for c in found["concepts"]:
        i = c["concept"]
        rows.append({
            "concept": i, "importance": c["importance"], "classes": c["classes"],
            "featvis": f"{s}/{i}/featvis.png" if found.get("has_featvis") else None,
            "patches": [{"crop": f"{s}/{i}/patch-{j}.png", "image_name": Path(p["image"]).name, "activation": p["activation"]} for j, p in enumerate(c["patches"])],
            "channels": [{**t, "page": f"../units/{s}/{t['channel']}.html" if t["channel"] in shown else None} for t in c["top_channels"]],
        })  # fmt: skip
    return {
        **plan.info.to_dict(), "layer": layer, "model_page": "../index.html", "layer_page": f"../layers/{s}.html", "json": f"{s}.json",
        "n_images": found["n_images"], "n_rows": found["n_rows"], "explained": found["explained"], "method": found["method"],
        "importance_rule": found["importance_rule"], "concepts": rows,
    }  # fmt: skip


def _featvis_tensor(store: SiteStore, layer: str, channels: list[int]) -> torch.Tensor:
    from ..images import load_image

    pics = [load_image(store.path(f"{_unit_dir(layer, c)}/featvis.png")) for c in channels if store.exists(f"{_unit_dir(layer, c)}/featvis.png")]
    return torch.stack(pics) if pics and all(p.shape == pics[0].shape for p in pics) else torch.empty(0)


def _tuning(plan: _Plan, grid: dict[str, Any]) -> dict[str, Any]:
    """Tuning curves of the shown units on the grating ``grid``: layer -> {channel: UnitTuning.to_dict()} or {"note": why not}."""
    from ..tuning import Gratings, tuning_curves

    t0, store = time.perf_counter(), plan.store
    fields = Gratings.__dataclass_fields__
    gratings = Gratings(**{k: v for k, v in grid.items() if k in fields})
    options = {k: v for k, v in grid.items() if k not in fields}
    out: dict[str, Any] = {}
    computed: dict[str, int] = {}
    settings = dict(grid)
    for layer, channels in plan.shown.items():
        name = f"tuning/{slug(layer)}.json"
        cached = store.cached(name, [settings, layer]) or {}
        if "note" in cached:
            out[layer] = cached
            continue
        values = {int(c): v for c, v in cached.items()}
        todo = [c for c in channels if c not in values or not store.exists(f"{_unit_dir(layer, c)}/tuning.png")]
        if todo:
            try:
                plan.say(f"tuning curves of {layer}, {len(todo)} units")
                result = tuning_curves(plan.model, [f"{layer}:{c}" for c in todo], gratings=gratings, progress=plan.progress, **options)
            except CnnlensError as exc:
                note = f"not measured: {exc}"
                plan.warnings.append(f"{layer}: tuning {note}")
                store.cache(name, [settings, layer], {"note": note})
                out[layer] = {"note": note}
                continue
            for c in todo:
                unit = f"{layer}:{c}"
                values[c] = result[unit].to_dict()
                save_figure(result.figure(unit=unit), store.path(f"{_unit_dir(layer, c)}/tuning.png"), overwrite=True, dpi=70)
            store.cache(name, [settings, layer], values)
        computed[layer] = len(todo)
        out[layer] = values
    plan.stage("tuning", t0, computed=computed)
    return out


def _attribution(plan: _Plan, n: int, methods: Sequence[str], seed: int | None) -> dict[str, Any] | None:
    """Attribution maps of ``n`` images spread over the list, for their top class: the images page's data."""
    from ..attribution import attribute, figure_names

    t0, store = time.perf_counter(), plan.store
    if n == 0:
        plan.stage("attribution", t0, computed=0)
        return None
    picked = list(plan.sources.items())[:: max(1, len(plan.sources) // n)][:n]
    key = [list(methods), [name for name, _ in picked], seed]
    cached = store.cached("attribution.json", key)
    if cached is not None and all(store.exists(item["figure"]) for item in cached["images"]):
        plan.stage("attribution", t0, computed=0)
        return cached
    files = [s for _, s in picked]
    batch = files if all(isinstance(s, Path) for s in files) else torch.stack([_pixels(s, plan.model) for s in files])
    try:
        result = attribute(plan.model, batch, list(methods), seed=seed, progress=plan.progress)
    except CnnlensError as exc:
        plan.warnings.append(f"no attribution page: {exc}")
        plan.stage("attribution", t0, computed=0, note=str(exc))
        return None
    figure_files = figure_names([name for name, _ in picked])
    items = []
    for i, (name, _) in enumerate(picked):
        path = f"img/attribution/{figure_files[i]}"
        save_figure(result.figure(i), store.path(path), overwrite=True, dpi=70)
        probs = result.probabilities[i]
        top = torch.topk(probs, min(5, probs.numel()))
        items.append({
            "name": Path(name).name if not name.startswith("images[") else name,
            "source": name,
            "figure": path,
            "target": int(result.targets[i]),
            "top": [{"class": result.info.category(int(j)) or str(int(j)), "index": int(j), "probability": float(p)} for p, j in zip(top.values, top.indices)],
        })  # fmt: skip
    value = {"methods": list(methods), "images": items}
    store.cache("attribution.json", key, value)
    plan.stage("attribution", t0, computed=len(items))
    return value


def _representations(plan: _Plan, batch_size: int, seed: int | None) -> dict[str, Any] | None:
    """The representations page's data: CKA of the site's layers and the output over the site's
    images, and linear probes by depth when the images are a labelled folder."""
    from ..folders import labelled_folder
    from ..representations import probe, similarity

    t0, store = time.perf_counter(), plan.store
    layers = [*plan.layers, "logits"]
    n = len(plan.sources)
    labelled = None
    if isinstance(plan.images, (str, Path)) and Path(plan.images).is_dir():
        try:
            labelled = labelled_folder(plan.images, limit=plan.limit)
        except CnnlensError:
            labelled = None  # no labels: no probes
    if labelled is not None and (len(set(labelled.labels)) < 2 or len(labelled) < 10):
        labelled = None
    key = [layers, batch_size, seed, labelled is not None]
    cached = store.cached("representations.json", key)
    if cached is not None and all(store.exists(f) for f in cached["figures"].values() if f):
        plan.stage("representations", t0, computed=0)
        return cached
    if n < 4:
        note = f"CKA needs at least 4 images; the site has {n}"
        plan.stage("representations", t0, computed=0, note=note)
        return {"note": note, "figures": {}}
    try:
        cka = similarity(plan.model, list(plan.sources.values()), layers_a=layers, debiased=True, batch_size=max(4, min(batch_size * 2, n)),
                         progress=plan.progress, sharding=Sharding(distributed=False))  # fmt: skip
    except CnnlensError as exc:
        plan.warnings.append(f"no representations page: {exc}")
        plan.stage("representations", t0, computed=0, note=str(exc))
        return None
    figures = {"cka": "img/representations/cka.png", "probe": None}
    save_figure(cka.figure(), store.path(figures["cka"]), overwrite=True, dpi=80)
    value: dict[str, Any] = {"cka": cka.to_dict(), "probe": None, "figures": figures, "note": None}
    if labelled is not None:
        folds = min(5, max(2, min(labelled.labels.count(c) for c in set(labelled.labels))))
        probes = probe(plan.model, labelled, layers=layers, folds=folds, batch_size=batch_size, seed=seed, progress=plan.progress)
        figures["probe"] = "img/representations/probe.png"
        save_figure(probes.figure(), store.path(figures["probe"]), overwrite=True, dpi=80)
        value["probe"] = probes.to_dict()
    else:
        value["note"] = "Linear probes need labelled images: give the site a folder of class subfolders or with a labels.csv."
    store.cache("representations.json", key, value)
    plan.stage("representations", t0, computed=1)
    return value


CIRCUIT_ROW = 6  # connections shown in each row of a unit page


def _circuits(plan: _Plan) -> dict[str, Any]:
    """Per pair of neighbouring site layers, the expanded weights of every shown unit's strongest
    connections (and the classes of the last layer's units): ``{"pairs": {"A>B": {...}}, "notes": {...}}``,
    with a weight picture per connection."""
    from ..circuits import class_weights, expanded_weights

    t0, store = time.perf_counter(), plan.store
    key = [plan.layers, {n: plan.shown[n] for n in plan.layers}, CIRCUIT_ROW]
    cached = store.cached("circuits.json", key)
    if cached is not None:
        plan.stage("circuits", t0, computed=0)
        return cached
    pairs: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for a, b in [*zip(plan.layers, plan.layers[1:]), (plan.layers[-1], "logits")]:
        try:
            if b == "logits":
                weights = class_weights(plan.model, a)  # (classes, channels of a)
                used = {c: _strongest(weights[:, c], None) for c in plan.shown[a]}
                pairs[f"{a}>{b}"] = {"used_by": {str(c): v for c, v in used.items()}}
                continue
            kernels = expanded_weights(plan.model, a, b)  # (channels of b, channels of a, kh, kw)
        except CnnlensError as exc:
            notes[f"{a}>{b}"] = str(exc)
            continue
        sums = kernels.flatten(2).sum(2)
        built = {c: _strongest(sums[c], kernels[c]) for c in plan.shown[b]}
        used = {c: _strongest(sums[:, c], kernels[:, c]) for c in plan.shown[a]}
        for target, rows in built.items():
            for row in rows:
                row["picture"] = _weight_picture(store, f"{_unit_dir(b, target)}/from-{slug(a)}-{row['channel']}.png", row.pop("kernel"))
        for source, rows in used.items():
            for row in rows:
                row["picture"] = _weight_picture(store, f"{_unit_dir(a, source)}/to-{slug(b)}-{row['channel']}.png", row.pop("kernel"))
        pairs[f"{a}>{b}"] = {"built_from": {str(c): v for c, v in built.items()}, "used_by": {str(c): v for c, v in used.items()}}
    value = {"pairs": pairs, "notes": notes}
    store.cache("circuits.json", key, value)
    plan.stage("circuits", t0, computed=len(pairs), notes=notes or None)
    return value


def _strongest(weights: torch.Tensor, kernels: torch.Tensor | None) -> list[dict[str, Any]]:
    order = torch.argsort(weights, descending=True, stable=True)[:CIRCUIT_ROW]
    return [{"channel": int(i), "weight": float(weights[i]), **({"kernel": kernels[i]} if kernels is not None else {})} for i in order]


def _weight_picture(store: SiteStore, relative: str, kernel: torch.Tensor) -> str | None:
    """A kernel as a small picture: red where it excites, blue where it inhibits (white 0)."""
    if kernel.numel() <= 1:
        return None
    bound = float(kernel.abs().max()) or 1.0
    k = (kernel / bound).clamp(-1, 1)
    pos, neg = k.clamp(min=0), (-k).clamp(min=0)
    rgb = torch.stack([1 - neg, 1 - pos - neg, 1 - pos]).clamp(0, 1)  # white to red (positive) or blue (negative)
    scale = max(1, 48 // max(kernel.shape))
    rgb = rgb.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    if not store.exists(relative):
        save_image(rgb, store.path(relative), overwrite=True)
    return relative


def _unit_circuits(plan: _Plan, layer: str, channel: int, wired: dict[str, Any]) -> dict[str, Any] | None:
    """The "built from" and "used by" rows of a unit page (links relative to the page)."""
    if not wired:
        return None
    li = plan.layers.index(layer)
    out: dict[str, Any] = {"built_from": None, "used_by": None, "notes": []}
    cats = plan.info.categories

    def card(other: str, row: dict[str, Any]) -> dict[str, Any]:
        c = row["channel"]
        has_page = other in plan.shown and c in plan.shown[other]
        base = f"../../units/{slug(other)}/{c}"
        return {
            "unit": f"{other}:{c}" if other != "logits" else (f"{cats[c]} ({c})" if cats and c < len(cats) else f"logits:{c}"),
            "weight": row["weight"], "page": f"{base}.html" if has_page else None,
            "featvis": f"{base}/featvis.png" if has_page and plan.store.exists(f"{_unit_dir(other, c)}/featvis.png") else None,
            "patch": f"{base}/patch-0.png" if has_page and plan.store.exists(f"{_unit_dir(other, c)}/patch-0.png") else None,
            "picture": f"../../{row['picture']}" if row.get("picture") else None,
        }  # fmt: skip

    if li > 0:
        pair = f"{plan.layers[li - 1]}>{layer}"
        if pair in wired["pairs"]:
            out["built_from"] = {"layer": plan.layers[li - 1], "cards": [card(plan.layers[li - 1], r) for r in wired["pairs"][pair]["built_from"][str(channel)]]}
        elif pair in wired["notes"]:
            out["notes"].append(wired["notes"][pair])
    after = plan.layers[li + 1] if li + 1 < len(plan.layers) else "logits"
    pair = f"{layer}>{after}"
    if pair in wired["pairs"]:
        out["used_by"] = {"layer": after, "cards": [card(after, r) for r in wired["pairs"][pair]["used_by"][str(channel)]]}
    elif pair in wired["notes"]:
        out["notes"].append(wired["notes"][pair])
    return out


def _pixels(source: Any, model: nn.Module) -> torch.Tensor:
    from ..pixelnet import image_preprocessing
    from ..pixels import as_pixels

    return as_pixels(source, image_preprocessing(model), fit="crop")[0]


# -- pages ---------------------------------------------------------------------------------------


def _write_pages(
    plan: _Plan, mined: dict[str, dict[str, Any]], tuned: dict[str, Any], featvis: dict[str, dict[str, Any]], attributed: dict[str, Any] | None,
    represented: dict[str, Any] | None, wired: dict[str, Any], method: str | None, *, has_filters: bool, relevant: dict[str, dict[str, Any]],
    concepts: dict[str, dict[str, Any]] | None = None,
) -> int:  # fmt: skip
    """Every page and the JSON beside it (a file is rewritten only when its text changed); the number of pages."""
    store = plan.store
    store.write_text("assets/site.css", CSS)
    store.write_text("assets/site.js", JS)
    written = [("index", pages.model_page, _model_data(plan, attributed, represented, has_filters=has_filters))]
    if attributed:
        written.append(("images", pages.images_page, {**plan.info.to_dict(), **attributed}))
    if represented:
        layer_pages = {layer: f"layers/{slug(layer)}.html" for layer in plan.layers}
        written.append(("representations", pages.representations_page, {**plan.info.to_dict(), **represented, "layer_pages": layer_pages}))
    for li, layer in enumerate(plan.layers):
        s = slug(layer)
        layer_tuning = tuned.get(layer) or {}
        unit_tuning = {} if "note" in layer_tuning else layer_tuning
        values = (featvis.get(layer) or {}).get("values", {})
        layer_data = _layer_data(plan, li, mined[layer], unit_tuning, values)
        if concepts and layer in concepts:
            layer_data["concepts_page"] = f"../concepts/{s}.html"
            written.append((f"concepts/{s}", pages.concepts_page, _concepts_data(plan, layer, concepts[layer])))
        written.append((f"layers/{s}", pages.layer_page, layer_data))
        channels = plan.shown[layer]
        for ci, c in enumerate(channels):
            data = _unit_data(plan, layer, ci, mined[layer], unit_tuning.get(c), layer_tuning.get("note"), featvis.get(layer), method)
            data["circuits"] = _unit_circuits(plan, layer, c, wired)
            data["relevance"] = _unit_relevance(plan, layer, c, relevant.get(layer))
            written.append((f"units/{s}/{c}", pages.unit_page, data))
    for stem, page, data in written:
        store.write_json(f"{stem}.json", data)
        store.write_text(f"{stem}.html", page(data))
    return len(written)


def _neighbours(names: Sequence[Any], i: int, page: Any, label: Any = str) -> dict[str, Any]:
    """``previous`` and ``next`` links of item ``i`` (None at the ends)."""
    return {
        "previous": {"name": label(names[i - 1]), "page": page(names[i - 1])} if i > 0 else None,
        "next": {"name": label(names[i + 1]), "page": page(names[i + 1])} if i + 1 < len(names) else None,
    }


def _top(entry: dict[str, Any]) -> float | None:
    return entry["patches"][0]["activation"] if entry["patches"] else None


def _model_data(plan: _Plan, attributed: dict[str, Any] | None, represented: dict[str, Any] | None, *, has_filters: bool) -> dict[str, Any]:
    layers = [
        {
            "name": layer, "slug": slug(layer), "page": f"layers/{slug(layer)}.html", "type": plan.rows[layer].type,
            "output_shape": plan.rows[layer].output_shape, "receptive_field": plan.rows[layer].receptive_field.to_dict(), "units": plan.shown[layer],
        }
        for layer in plan.layers
    ]  # fmt: skip
    return {
        **plan.info.to_dict(),
        "input_size": plan.identity["input_size"],
        "n_images": plan.identity["n_images"],
        "images": _images_text(plan.images, len(plan.sources)),
        "k": plan.identity["k"],
        "layers": layers,
        "figures": {"report": "img/report.png", "filters": "img/filters.png" if has_filters else None},
        "attribution": {"page": "images.html", "n_images": len(attributed["images"]), "methods": attributed["methods"]} if attributed else None,
        "representations": {"page": "representations.html", "probe": bool(represented.get("probe"))} if represented else None,
        "report": plan.report.to_dict(),
    }


def _class_names(plan: _Plan, layer: str) -> list[str] | None:
    """The class of each channel where a site layer's channels are the classes (squeezenet's
    ``classifier.1``: as many channels as the weights have classes, and the model's output that wide)."""
    cats = list(plan.info.categories or [])
    out = plan.rows[layer].output_shape
    final = plan.report.layers[-1].output_shape if plan.report.layers else None
    if cats and out is not None and len(out) == 4 and int(out[1]) == len(cats) and final is not None and int(final[1]) == len(cats):
        return cats
    return None


def _grating_share(tuning: dict[str, Any] | None, top: float | None) -> float | None:
    """The unit's best grating response as a share of its top activation on the images."""
    if not tuning or top is None or top <= 0 or tuning.get("peak_response") is None:
        return None
    return float(tuning["peak_response"]) / float(top)


def _layer_data(plan: _Plan, li: int, mined: dict[str, Any], tuning: dict[int, Any], featvis_values: dict[int, float]) -> dict[str, Any]:
    layer = plan.layers[li]
    s, row = slug(layer), plan.rows[layer]
    entries = {c["channel"]: c for c in mined["channels"]}
    classes = _class_names(plan, layer)
    cards = []
    for c in plan.shown[layer]:
        e, t = entries[c], tuning.get(c)
        share = _grating_share(t, _top(e))
        badge = share is not None and share >= GRATING_BADGE_SHARE
        cards.append({
            "channel": c, "page": f"../units/{s}/{c}.html", "class_name": classes[c] if classes else None,
            "featvis": f"../units/{s}/{c}/featvis.png" if c in featvis_values else None,
            "top_patch": f"../units/{s}/{c}/patch-0.png" if e["patches"] else None,
            "mean_activation": e["mean_activation"], "top_activation": _top(e), "dead": e["dead"], "grating_share": share,
            "tuning": {key: t.get(key) for key in ("classification", "osi", "preferred_orientation_deg", "modulation_ratio")} if t and badge else None,
        })  # fmt: skip
    every = [entries[c] for c in sorted(entries)]
    return {
        **plan.info.to_dict(), "layer": layer, "type": row.type, "output_shape": row.output_shape, "receptive_field": row.receptive_field.to_dict(),
        "n_channels": len(every), "n_dead": sum(1 for e in every if e["dead"]), "units": cards,
        **_neighbours(plan.layers, li, lambda name: f"{slug(name)}.html"),
        "model_page": "../index.html", "json": f"{s}.json",
        "channels": [{"channel": e["channel"], "mean_activation": e["mean_activation"], "top_activation": _top(e), "dead": e["dead"]} for e in every],
    }  # fmt: skip


def _unit_relevance(plan: _Plan, layer: str, channel: int, mined: dict[str, Any] | None) -> dict[str, Any] | None:
    """The unit's patches by relevance and the classes it serves most (None when not mined)."""
    if mined is None:
        return None
    e = next((entry for entry in mined["channels"] if entry["channel"] == channel), None)
    if e is None:
        return None
    d = str(channel)
    patches = [{**p, "image_name": Path(p["image"]).name, "crop": f"{d}/relevance-{j}.png"} for j, p in enumerate(e["patches"]) if p["activation"] > 0]
    note = None
    if len(patches) < len(e["patches"]):
        note = f"{len(patches)} of the {plan.identity['n_images']} images gave the unit positive relevance; the others tie at 0 and are not shown."
    return {"patches": patches, "classes": e.get("classes", []), "dead": e["dead"], "rule": mined.get("unit_rule"), "note": note}


def _unit_data(
    plan: _Plan, layer: str, ci: int, mined: dict[str, Any], tuning: dict[str, Any] | None, tuning_note: str | None,
    featvis: dict[str, Any] | None, method: str | None,
) -> dict[str, Any]:  # fmt: skip
    channels = plan.shown[layer]
    c, s, d = channels[ci], slug(layer), str(channels[ci])
    e = next(entry for entry in mined["channels"] if entry["channel"] == c)
    patches = [
        {
            **p, "image_name": Path(p["image"]).name, "crop": f"{d}/patch-{j}.png",
            "projection": f"{d}/{method}-{j}.png" if method and plan.store.exists(f"{_unit_dir(layer, c)}/{method}-{j}.png") else None,
        }
        for j, p in enumerate(e["patches"])
    ]  # fmt: skip
    values = (featvis or {}).get("values", {})
    picture = None
    if c in values:
        steps = featvis["settings"]["steps"]  # type: ignore[index]
        picture = {
            "image": f"{d}/featvis.png", "objective": values[c],
            "description": f"An image optimized for {steps} steps to excite the unit's mean activation "
            "(Fourier parameterization, decorrelated colours, random transforms; Olah et al. 2017).",
        }  # fmt: skip
    classes = _class_names(plan, layer)
    share = _grating_share(tuning, _top(e))
    return {
        **plan.info.to_dict(), "unit": f"{layer}:{c}", "layer": layer, "channel": c, "class_name": classes[c] if classes else None,
        "grating_share": share, "tuning_badge": share is not None and share >= GRATING_BADGE_SHARE, "grating_badge_share": GRATING_BADGE_SHARE,
        "mean_activation": e["mean_activation"],
        "top_activation": _top(e), "dead": e["dead"], "receptive_field": plan.rows[layer].receptive_field.to_dict(),
        "n_images": plan.identity["n_images"], "featvis": picture, "patches": patches, "deconv_method": method,
        "tuning": {**tuning, "figure": f"{d}/tuning.png"} if tuning else None, "tuning_note": tuning_note,
        **_neighbours(channels, ci, lambda ch: f"{ch}.html", lambda ch: f"unit {ch}"),
        "layer_page": f"../../layers/{s}.html", "model_page": "../../index.html", "json": f"{c}.json",
    }  # fmt: skip
