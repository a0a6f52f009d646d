"""Concepts of a layer found without labels: non-negative matrix factorisation of its activations
(CRAFT, Fel et al. 2023), each concept shown as a unit is shown.

A layer's activation at one position of one image is a vector of ``C`` channel values. After a
ReLU these are non-negative, and NMF writes a sample of them as ``A ~ U H``: ``H`` ``(n, C)`` holds
``n`` concept directions (non-negative mixtures of channels), ``U`` the activation of each concept
at each position. A concept is then shown like a channel:

- **top patches**: its activation map (the projection of every position onto ``H``,
  :func:`cnnlens.concepts.nmf.project`) is mined over the folder by the patch machinery of
  :mod:`cnnlens.units` (the same streaming pass, border rule, ties and receptive-field crops);
- **feature visualization**: :func:`cnnlens.featvis.render` of the objective
  ``direction(layer, h_k)`` (lucent's cosine objective);
- **heatmap** on any image: the concept's activation map, upsampled (:func:`heatmaps`);
- **importance for a class**: *gradient x concept*, ``sum over positions of u_k(p) * d logit /
  d u_k(p)`` (with ``a(p) = sum_k u_k(p) h_k`` the gradient through ``u_k`` is ``h_k . d logit / d
  a(p)``): the first-order change of the class logit when the concept is taken out of the layer.
  CRAFT's Sobol indices measure the same thing by masking concepts over thousands of forward
  passes; the gradient estimate needs one backward pass per image.

**What is factorised** (the memory stays flat in the number of images): at most
``ConceptSettings.rows`` activation vectors: every position of every image when that fits, else
the same number of positions from each image, drawn at random from the image's own seed
(:func:`cnnlens.seeds.item_generator`), so the sample does not depend on batches or processes;
beyond ``rows`` images, one position each of ``rows`` images spread over the list. Activations
below zero (a layer before its ReLU) are set to zero and the share of mass removed is reported.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..checks import check_int, check_number
from ..distributed import ExactSum, Job, KeyedSum, Sharding, fingerprint, is_main, model_fingerprint, register_state, run
from ..errors import CnnlensError
from ..folders import iter_batches, prepare_image, select_images, spread
from ..geometry import layers_geometry
from ..gradients import layer_gradient
from ..hooks import eval_mode, forward_until
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, pixel_model, unwrap
from ..registry import model_info
from ..results import Result
from ..seeds import item_generator
from ..units.patch_results import PatchResult
from ..units.patches import PatchSettings, Readout, check_patch_layer, top_patches_of
from .nmf import Factorization, nmf, project

__all__ = ["METHODS", "ConceptSettings", "Concepts", "ConceptMaps", "concept_maps", "discover", "heatmaps", "importance", "sample_plan"]

METHODS = ("nmf",)


@dataclass(frozen=True)
class ConceptSettings:
    """How :func:`discover` samples, factorises and shows.

    - ``rows``: the most activation vectors factorised (see the module docstring);
    - ``max_iter``, ``tol``: the NMF's sweeps and stopping rule (:func:`cnnlens.concepts.nmf.nmf`);
    - ``batch_size``, ``workers``: images per forward pass, threads reading ahead;
    - ``min_inside``: the border rule of the patches (:class:`cnnlens.units.PatchSettings`);
    - ``size``: square side images are resized and cropped to (default: the weights');
    - ``importance``: also measure gradient x concept per explained class (one more pass with a
      backward to the layer);
    - ``visualize``, ``steps``, ``render_size``: also render a feature visualization of each
      concept direction (``steps`` Adam steps at ``render_size`` px).
    """

    rows: int = 32768
    max_iter: int = 1000
    tol: float = 1e-7
    batch_size: int = 32
    workers: int = 0
    min_inside: float = 0.5
    size: int | None = None
    importance: bool = True
    visualize: bool = False
    steps: int = 256
    render_size: int = 128


def sample_plan(n_images: int, positions: int, rows: int) -> list[int]:
    """How many positions of each of ``n_images`` images (of ``positions`` each) the factorisation
    reads, for at most ``rows`` vectors (see the module docstring)."""
    if n_images * positions <= rows:
        return [positions] * n_images
    if n_images <= rows:
        base, extra = divmod(rows, n_images)
        plus = set(spread(n_images, extra)) if extra else set()
        return [min(positions, base + (1 if i in plus else 0)) for i in range(n_images)]
    chosen = set(spread(n_images, rows))
    return [1 if i in chosen else 0 for i in range(n_images)]


def _positions(seed: int, index: int, positions: int, count: int) -> torch.Tensor:
    if count >= positions:
        return torch.arange(positions)
    return torch.randperm(positions, generator=item_generator(seed, index))[:count].sort().values


def concept_maps(activation: torch.Tensor, basis: torch.Tensor, *, sweeps: int = 50) -> torch.Tensor:
    """``(B, n, h, w)``: each concept's activation at every position of a ``(B, C, h, w)`` layer
    output (:func:`cnnlens.concepts.nmf.project` onto the ``(n, C)`` basis, negatives set to 0)."""
    b, c, h, w = activation.shape
    flat = activation.float().clamp_min(0).permute(0, 2, 3, 1).reshape(-1, c)
    u = project(flat, basis.to(flat.device), sweeps=sweeps)
    return u.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()


# -- the sample ------------------------------------------------------------------------------------


def _encode(t: torch.Tensor) -> str:
    return base64.b64encode(t.contiguous().numpy().astype("<f4").tobytes()).decode("ascii")


def _decode(text: str, width: int) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype="<f4").copy()).reshape(-1, width)


@register_state("concepts-sample")
class SampleState:
    """The activation vectors read so far, by global image index (merged as a union)."""

    def __init__(self) -> None:
        self.rows: dict[int, torch.Tensor] = {}

    def merge(self, other: SampleState) -> None:
        self.rows.update(other.rows)

    def matrix(self) -> torch.Tensor:
        return torch.cat([self.rows[i] for i in sorted(self.rows)]) if self.rows else torch.empty(0, 0)

    def to_json(self) -> dict[str, Any]:
        width = next(iter(self.rows.values())).shape[1] if self.rows else 0
        return {"width": width, "rows": {str(i): _encode(t) for i, t in sorted(self.rows.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleState:
        out = cls()
        out.rows = {int(i): _decode(t, int(data["width"])) for i, t in data["rows"].items()}
        return out

    @classmethod
    def result(cls, settings: dict[str, Any], state: Any) -> Result:
        raise CnnlensError("merge: a concepts sample is one step of discover(), not a result; run discover (under torchrun to share it)")


@register_state("concepts-importance")
class ImportanceState:
    """Per concept, the exact sum over images of gradient x concept, and its sums per explained class."""

    def __init__(self, rows: int) -> None:
        self.sums = ExactSum(rows)
        self.classes = KeyedSum(rows)

    def merge(self, other: ImportanceState) -> None:
        self.sums.merge(other.sums)
        self.classes.merge(other.classes)

    def to_json(self) -> dict[str, Any]:
        return {"sums": self.sums.to_json(), "classes": self.classes.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportanceState:
        out = cls(0)
        out.sums, out.classes = ExactSum.from_json(data["sums"]), KeyedSum.from_json(data["classes"])
        return out

    @classmethod
    def result(cls, settings: dict[str, Any], state: Any) -> Result:
        raise CnnlensError("merge: concept importance is one step of discover(), not a result; run discover (under torchrun to share it)")


# -- the result ------------------------------------------------------------------------------------


@dataclass(repr=False)
class Concepts(Result):
    """What :func:`discover` found: ``n`` concepts of ``layer``.

    - ``basis`` ``(n, C)``: the concept directions (non-negative, unit length; concept 0 the most
      active on the sample);
    - ``patches``: a :class:`cnnlens.units.PatchResult` whose "channels" are the concepts (``k``
      crops each, ranked by the concept's activation);
    - ``importance``: per concept, the mean over images of gradient x concept for each image's
      explained class (``target``, or its top class), in logits; ``classes``: per concept the
      classes that it raises most, with their share of its positive importance;
    - ``visualizations``: ``(n, 3, s, s)`` feature visualizations of the directions (or ``None``);
    - ``relative_error``: ``||A - U H||_F / ||A||_F`` on the factorised sample of ``n_rows``
      vectors (:attr:`explained` = ``1 - relative_error**2``).
    """

    layer: str
    method: str
    basis: torch.Tensor
    patches: PatchResult
    n_images: int
    n_rows: int
    relative_error: float
    iterations: int
    seed: int
    target: int | None = None
    importance: list[float] | None = None
    classes: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)
    visualizations: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.basis.shape[0])

    @property
    def explained(self) -> float:
        return 1.0 - self.relative_error**2

    def top_channels(self, concept: int, count: int = 5) -> list[tuple[int, float]]:
        """The channels with the largest weight in a concept's direction: ``(channel, weight)``."""
        w = self.basis[concept]
        order = torch.argsort(w, descending=True, stable=True)[:count]
        return [(int(c), float(w[c])) for c in order]

    def class_label(self, k: int) -> str:
        return self.class_names.get(k, str(k))

    def heatmaps(self, model: nn.Module, image: Any) -> ConceptMaps:
        """Each concept's heatmap on ``image`` (:func:`heatmaps`)."""
        return heatmaps(model, self, image)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info,
            "layer": self.layer,
            "method": self.method,
            "n_concepts": self.n,
            "n_images": self.n_images,
            "n_rows": self.n_rows,
            "sample_rule": "at most rows activation vectors: every position of every image when they fit, else as many random positions "
            "from each image (drawn from the image's seed)",
            "relative_error": self.relative_error,
            "explained": self.explained,
            "iterations": self.iterations,
            "seed": self.seed,
            "importance_rule": None if self.importance is None else
            "gradient x concept: sum over positions of u_k(p) * h_k . d logit / d a(p), mean over images, for "
            + ("each image's top class" if self.target is None else f"class {self.target}"),
            "target": self.target,
            "warnings": list(self.warnings),
            "concepts": [
                {
                    "concept": i,
                    "importance": None if self.importance is None else self.importance[i],
                    "classes": [{"class": k, "name": self.class_names.get(k), "share": s} for k, s in self.classes.get(i, [])],
                    "top_channels": [{"channel": c, "weight": w} for c, w in self.top_channels(i)],
                    "direction": [float(v) for v in self.basis[i]],
                    "patches": [p.to_dict() for p in self.patches.patches.get(i, [])],
                }
                for i in range(self.n)
            ],
        }

    def to_text(self) -> str:
        lines = [
            f"{self.label}: {self.n} concepts of {self.layer} by {self.method.upper()} on {self.n_rows} activation vectors of "
            f"{self.n_images} images (relative error {self.relative_error:.3f}, {self.explained:.1%} of the squared activation explained)",
            f"{'concept':>7}  {'importance':>10}  {'best':>8}  top channels          classes it raises most",
        ]
        for i in range(self.n):
            imp = "" if self.importance is None else f"{self.importance[i]:.4g}"
            best = self.patches.patches.get(i, [])
            top = f"{best[0].activation:.4g}" if best else ""
            chans = ", ".join(str(c) for c, _ in self.top_channels(i, 4))
            classes = ", ".join(f"{self.class_label(k)} {s:.0%}" for k, s in self.classes.get(i, [])[:3])
            lines.append(f"{i:>7}  {imp:>10}  {top:>8}  {chans:<20}  {classes}")
        return "\n".join(lines)

    @property
    def label(self) -> str:
        from ..registry import info_label

        return info_label(self.info)

    def figure(self, *, concepts: Sequence[int] | None = None, crops: bool = True) -> Any:
        """One row per concept: its feature visualization (when rendered), then its top crops
        (``crops=False``: its strongest channels and classes instead, no image of the folder)."""
        from .plots import plot_concepts

        return plot_concepts(self, concepts=concepts, crops=crops)

    def _summary(self) -> dict[str, Any]:
        return {"model": self.info.get("model"), "layer": self.layer, "n": self.n, "n_images": self.n_images, "relative_error": round(self.relative_error, 4)}


@dataclass(repr=False)
class ConceptMaps(Result):
    """Each concept's heatmap on one image: ``maps`` ``(n, H, W)`` (the activation map upsampled
    bilinearly to the image), ``grid`` ``(n, h, w)`` (at the layer's positions), ``image`` ``(3, H, W)``."""

    layer: str
    image: torch.Tensor
    maps: torch.Tensor
    grid: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def pixels(self) -> torch.Tensor:
        return self.image

    def to_dict(self) -> dict[str, Any]:
        return {**self.info, "layer": self.layer, "image": self.name, "grid": [[[float(v) for v in row] for row in m] for m in self.grid],
                "max": [float(m.max()) for m in self.grid]}  # fmt: skip

    def figure(self) -> Any:
        from .plots import plot_concept_maps

        return plot_concept_maps(self)


# -- the passes ------------------------------------------------------------------------------------


def _sample_job(net: nn.Module, prep: Any, layer: str, chosen: list[tuple[int, Any, torch.Tensor]], batch_size: int, workers: int, key: dict[str, Any]) -> Job:
    def steps(state: SampleState, items: Sequence[int] | None, bar: Any) -> Iterator[None]:
        assert items is not None
        device, dtype = model_device(net), model_dtype(net)
        with eval_mode(net), torch.no_grad():
            for batch_idx, x in iter_batches([chosen[i][1] for i in items], prep, batch_size=batch_size, workers=workers):
                act = forward_until(net, prep.normalize(x.to(device, dtype=dtype)), [layer])[layer]
                flat = act.flatten(2).float().cpu()  # (B, C, P)
                for b, i in enumerate(batch_idx):
                    index, _, where = chosen[items[i]]
                    state.rows[index] = flat[b][:, where].T.contiguous()
                bar.update(len(batch_idx))
                yield

    return Job(kind="concepts-sample", n_items=len(chosen), batch_size=batch_size, settings=lambda: key, empty=SampleState, steps=steps,
               desc=f"concepts {layer}: reading activations", unit="img")  # fmt: skip


def _importance_job(net: nn.Module, pixnet: nn.Module, prep: Any, layer: str, basis: torch.Tensor, sources: list[Any], target: int | None,
                    batch_size: int, workers: int, key: dict[str, Any]) -> Job:  # fmt: skip
    def steps(state: ImportanceState, items: Sequence[int] | None, bar: Any) -> Iterator[None]:
        assert items is not None
        device, dtype = model_device(net), model_dtype(net)
        for batch_idx, x in iter_batches([sources[i] for i in items], prep, batch_size=batch_size, workers=workers):
            x = x.to(device, dtype=dtype)
            given = None if target is None else torch.full((x.shape[0],), target, dtype=torch.long)
            got = layer_gradient(net, pixnet, x, layer, given)
            scores = concept_importance(got.activation, got.gradient, basis)  # (B, n)
            state.sums.add(scores.T.cpu())
            state.classes.add_labelled(scores.T.cpu(), got.targets.cpu())
            bar.update(len(batch_idx))
            yield

    return Job(kind="concepts-importance", n_items=len(sources), batch_size=batch_size, settings=lambda: key,
               empty=lambda: ImportanceState(int(basis.shape[0])), steps=steps, desc=f"concepts {layer}: importance", unit="img")  # fmt: skip


def concept_importance(activation: torch.Tensor, gradient: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``(B, n)`` gradient x concept of each image: ``sum_p u_k(p) * (h_k . g(p))`` with ``u`` the
    concept maps of the ``(B, C, h, w)`` activation, ``g`` the gradient of the logit there."""
    u = concept_maps(activation, basis)  # (B, n, h, w)
    g = torch.einsum("bchw,nc->bnhw", gradient.float(), basis.to(gradient.device).float())
    return (u * g).flatten(2).sum(2)


# -- the API ---------------------------------------------------------------------------------------


def discover(
    model: nn.Module,
    images: Any,
    *,
    layer: str,
    n: int = 8,
    method: str = "nmf",
    k: int = 9,
    limit: int | None = None,
    target: int | None = None,
    seed: int | None = None,
    settings: ConceptSettings | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> Concepts:
    """Find ``n`` concepts of ``layer`` over a folder of images, without labels (see the module docstring).

    Args:
        model: any CNN (from :func:`cnnlens.create_model` or any ``nn.Module``); left exactly as it was.
        images: a folder (flat or class subfolders), image files, or pixels in [0, 1]; files are
            resized and centre-cropped like the weights expect, a tensor is read at its own size (as
            :func:`cnnlens.top_patches` does).
        layer: a layer with a ``(B, C, H, W)`` output and a local receptive field (``features.9``).
        n: concepts (``1 .. C``).
        method: ``"nmf"`` (CRAFT's factorisation of positions).
        k: top patches per concept.
        limit: use this many images, spread evenly over the sorted list.
        target: the class whose logit the importance explains (``None``: each image's top class).
        seed: the positions sampled (and the feature visualizations) come from it; ``None`` draws
            one from torch's global generator (recorded in the result).
        settings: :class:`ConceptSettings`.
        progress: a bar on a terminal, a line every 10 s elsewhere.
        sharding: ``Sharding(distributed=...)``: under torchrun each process reads its share of the
            images in every pass (the result equals one process's); ``shard``/``checkpoint`` are not
            taken (the factorisation sits between two passes).

    Returns:
        :class:`Concepts`.

    Raises:
        CnnlensError: an unknown layer, a layer without a spatial map or with a global receptive
            field, ``n`` above the layer's channels, an unknown method, a bad number -- before any
            image is read.

    Example:
        >>> import cnnlens, torch
        >>> net = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> found = cnnlens.concepts.discover(net, torch.rand(6, 3, 64, 64), layer="features.4", n=3, k=2, seed=0,
        ...                                   progress=False)
        >>> found.basis.shape, len(found.patches.channels)
        (torch.Size([3, 128]), 3)
    """
    s = settings or ConceptSettings()
    if method not in METHODS:
        raise CnnlensError(f"method: {method!r} is not a concept method; use {', '.join(METHODS)}", param="method")
    n = check_int(n, "n", low=1, high=4096)
    k = check_int(k, "k", low=1, high=10_000)
    rows = check_int(s.rows, "rows", low=1, high=10_000_000)
    check_int(s.max_iter, "max_iter", low=1, high=1_000_000)
    check_number(s.tol, "tol", low=0.0, high=1.0)
    batch_size = check_int(s.batch_size, "batch_size", low=1, high=65_536)
    workers = check_int(s.workers, "workers", low=0, high=256)
    target = None if target is None else check_int(target, "target", low=0)
    if s.visualize:
        check_int(s.steps, "steps", low=1, high=100_000)
        check_int(s.render_size, "render_size", low=8, high=4096)
    sharding = sharding or Sharding()
    if sharding.shard is not None or sharding.checkpoint is not None:
        raise CnnlensError("shard: discover factorises between two passes over the images; share it with torchrun, not shard or checkpoint", param="shard")
    if seed is None:  # one draw, the same in every process of a torchrun group
        from ..distributed import process_group

        seed = int(process_group(sharding.distributed).all_gather(int(torch.randint(0, 2**62, (1,)).item()))[0])
    seed = check_int(seed, "seed", low=0, high=2**63 - 1)

    net, _ = unwrap(model)
    try:
        get_layer(net, layer)
    except CnnlensError as exc:
        raise CnnlensError(f"layer: {exc}", param="layer") from None
    prep = image_preprocessing(model, None, s.size, images)
    side = (int(prep.crop_size), int(prep.crop_size))  # type: ignore[arg-type]
    rf, shape = layers_geometry(net, [layer], side, prep.channels)[layer]
    check_patch_layer(layer, rf, shape, "layer")
    channels, positions = int(shape[1]), int(shape[2]) * int(shape[3])
    if n > channels:
        raise CnnlensError(f"n: {n} concepts of a layer of {channels} channels; give 1..{channels}", param="n")
    info = model_info(model)
    if target is not None and info.categories and target >= len(info.categories):
        raise CnnlensError(f"target: class {target} out of range, the model has classes 0..{len(info.categories) - 1}", param="target")
    sources = select_images(images, limit)
    names, paths = list(sources), list(sources.values())
    if not paths:
        raise CnnlensError("images: no images to read", param="images")

    # 1. the sample
    plan = sample_plan(len(paths), positions, rows)
    chosen = [(i, paths[i], _positions(seed, i, positions, c)) for i, c in enumerate(plan) if c > 0]
    pixels = [p for p in paths if isinstance(p, torch.Tensor)]
    key = {"layer": layer, "rows": rows, "seed": seed, "images_sha256": fingerprint(names, *pixels), "model_sha256": model_fingerprint(net),
           "size": list(side)}  # fmt: skip
    part = run(_sample_job(net, prep, layer, chosen, batch_size, workers, key), distributed=sharding.distributed, progress=progress)
    sample = part.state.matrix()
    warnings: list[str] = []
    negative = float(sample.clamp_max(0).abs().sum())
    if negative > 0:
        share = negative / max(float(sample.abs().sum()), 1e-30)
        warnings.append(f"{layer} has negative activations ({share:.1%} of the absolute mass): set to 0 for the factorisation; "
                        "a layer after a ReLU has none")  # fmt: skip
        sample = sample.clamp_min(0)
    if n > sample.shape[0]:
        raise CnnlensError(f"n: {n} concepts from {sample.shape[0]} activation vectors; give more images or fewer concepts", param="n")

    # 2. the factorisation
    fact: Factorization = nmf(sample.to(model_device(net)), n, max_iter=s.max_iter, tol=s.tol)
    basis = fact.H.float().cpu()
    if progress and is_main():
        import sys

        print(f"concepts {layer}: NMF of {sample.shape[0]} x {channels} into {n} in {fact.iterations} sweeps, "
              f"relative error {fact.relative_error:.4f}", file=sys.stderr, flush=True)  # fmt: skip

    # 3. the patches of every concept
    readout = Readout("concept", n, lambda a: concept_maps(a, basis), fingerprint(basis))
    patches = top_patches_of(model, layer, readout, images, k=k, limit=limit, size=s.size,
                             settings=PatchSettings(batch_size=batch_size, workers=workers, min_inside=s.min_inside),
                             progress=progress, sharding=Sharding(distributed=sharding.distributed))  # fmt: skip

    # 4. importance per class
    importance, classes, class_names = None, {}, {}
    if s.importance:
        pixnet = pixel_model(model, prep)
        key2 = {**key, "basis": fingerprint(basis), "target": target}
        got = run(_importance_job(net, pixnet, prep, layer, basis, paths, target, batch_size, workers, key2),
                  distributed=sharding.distributed, progress=progress)  # fmt: skip
        importance = got.state.sums.means(len(paths))
        classes = got.state.classes.top_shares(range(n))
        cats = list(info.categories or [])
        class_names = {c: cats[c] for row in classes.values() for c, _ in row if c < len(cats)}

    # 5. feature visualizations of the directions
    visuals = None
    if s.visualize:
        from ..featvis import objectives
        from ..featvis.render import render

        objective = sum(objectives.direction(layer, basis[i], batch=i) for i in range(n))
        visuals = render(model, objective, size=s.render_size, steps=s.steps, seed=seed, progress=progress and is_main()).images  # type: ignore[arg-type]

    return Concepts(
        layer=layer, method=method, basis=basis, patches=patches, n_images=len(paths), n_rows=int(sample.shape[0]),
        relative_error=fact.relative_error, iterations=fact.iterations, seed=seed, target=target, importance=importance,
        classes=classes, class_names=class_names, visualizations=visuals, info=info.to_dict(), warnings=warnings + list(patches.warnings),
    )  # fmt: skip


def importance(model: nn.Module, concepts: Concepts, images: Any, *, target: int | None = None, limit: int | None = None,
               batch_size: int = 32, progress: bool = True) -> list[float]:  # fmt: skip
    """The mean gradient x concept of each of ``concepts`` over ``images`` for ``target`` (``None``:
    each image's top class): a concept's importance for a class, measured on that class's images."""
    net, _ = unwrap(model)
    prep = image_preprocessing(model, None, concepts.patches.input_size[0])
    sources = list(select_images(images, limit).values())
    if not sources:
        raise CnnlensError("images: no images to read", param="images")
    pixnet = pixel_model(model, prep)
    job = _importance_job(net, pixnet, prep, concepts.layer, concepts.basis, sources, target, check_int(batch_size, "batch_size", low=1), 0, {})
    return run(job, distributed=False, progress=progress).state.sums.means(len(sources))


def heatmaps(model: nn.Module, concepts: Concepts, image: Any) -> ConceptMaps:
    """Each concept's activation map on ``image`` (a path, PIL image, array or ``(3, H, W)`` pixels,
    resized and cropped like the weights expect), upsampled bilinearly to the image."""
    net, _ = unwrap(model)
    prep = image_preprocessing(model, None, concepts.patches.input_size[0])
    x = prepare_image(image, prep)[None]
    with eval_mode(net), torch.no_grad():
        act = forward_until(net, prep.normalize(x.to(model_device(net), dtype=model_dtype(net))), [concepts.layer])[concepts.layer]
    grid = concept_maps(act, concepts.basis)[0].cpu()
    maps = torch.nn.functional.interpolate(grid[None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0].clamp_min(0)
    return ConceptMaps(concepts.layer, x[0].cpu(), maps, grid, dict(concepts.info), str(image) if not isinstance(image, torch.Tensor) else "image")
