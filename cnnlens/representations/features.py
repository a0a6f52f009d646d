"""Reading the representations of one or more models, layer by layer, on the same images: which
layers (:class:`Tap`), and each batch's layer outputs (:func:`read_taps`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..address import LOGITS
from ..errors import CnnlensError
from ..folders import LabelledImages, iter_batches, labelled_folder
from ..hooks import capture, forward_until
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, unwrap
from ..pixels import Preprocessing
from ..registry import default_layers, model_info

__all__ = ["Tap", "collect_pooled", "flat_features", "image_sources", "labelled_images", "make_tap", "pooled_features", "read_taps", "tap_batches"]


@dataclass(frozen=True)
class Tap:
    """One model and the layers read from it (``logits``: the model's output)."""

    model: nn.Module  # as given (its ModelInfo names it)
    net: nn.Module  # unwrapped: takes normalized input
    preprocessing: Preprocessing
    layers: tuple[str, ...]

    @property
    def label(self) -> str:
        """``squeezenet1_0 (random init)``."""
        return model_info(self.model).label

    @property
    def geometry(self) -> tuple[Any, ...]:
        """What the images must look like for this model (two taps with one geometry share the pixels)."""
        p = self.preprocessing
        return (p.resize_size, p.crop_size, p.channels)


def make_tap(model: nn.Module, layers: str | Sequence[str] | None, param: str = "layers", size: int | None = None, images: Any = None) -> Tap:
    """A :class:`Tap` of ``model``: ``layers`` checked (names of modules, or ``logits``), or the
    default stages by depth (:func:`cnnlens.default_layers` ``"representations"``); ``images`` given
    as a tensor are read at their own size (:func:`cnnlens.pixels.tensor_side`)."""
    if not isinstance(model, nn.Module):
        raise CnnlensError(f"{param.replace('layers', 'model')} must be an nn.Module, not {type(model).__name__}", param=param)
    net, _ = unwrap(model)
    prep = image_preprocessing(model, None, size, images)
    if layers is None:
        names = default_layers(net, "representations")
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise CnnlensError(f"{param} is empty; give one or more layer names", param=param)
    names = list(dict.fromkeys(str(n) for n in names))
    for name in names:
        if name == LOGITS:
            continue
        try:
            get_layer(net, name)
        except CnnlensError as exc:
            raise CnnlensError(f"{param}: {exc}", param=param) from None
    return Tap(model, net, prep, tuple(names))


def read_taps(tap: Tap, x: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The outputs of ``tap``'s layers on pixels ``x`` (``(B, C, H, W)`` in [0, 1]), in its order, or
    ``reduce`` of each (computed in the hook: no copy of an output is kept); the pass stops after
    the last layer unless the output is asked for."""
    net = tap.net
    x = tap.preprocessing.normalize(x.to(model_device(net), dtype=model_dtype(net), non_blocking=True))
    modules = [n for n in tap.layers if n != LOGITS]
    if LOGITS in tap.layers:
        with capture(net, modules, reduce=reduce) as record:
            out = net(x)
        if not isinstance(out, torch.Tensor):
            out = getattr(out, "logits", None)
            if not isinstance(out, torch.Tensor):
                raise CnnlensError(f"{tap.label} does not return a tensor: its logits cannot be read", param="layers")
        out = out.detach()
        seen = {**record.outputs, LOGITS: reduce(out) if reduce is not None else out}
    else:
        seen = forward_until(net, x, modules, reduce=reduce).outputs
    missing = [n for n in tap.layers if n not in seen]
    if missing:
        raise CnnlensError(f"layers: {missing[0]} of {tap.label} gave no tensor output in a forward pass (never called, or not a tensor)", param="layers")
    return {n: seen[n] for n in tap.layers}


def tap_batches(taps: Sequence[Tap], sources: Sequence[Any], items: Sequence[int], batch_size: int, workers: int = 0) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Batches of the images ``items`` (indices into ``sources``) prepared for every tap:
    ``(indices into items, [pixels per tap])``; taps with one geometry share one read."""
    geometries: dict[Any, int] = {}
    for tap in taps:
        geometries.setdefault(tap.geometry, len(geometries))
    firsts = {g: next(t for t in taps if t.geometry == g) for g in geometries}
    chosen = [sources[i] for i in items]
    readers = [iter_batches(chosen, firsts[g].preprocessing, batch_size=batch_size, workers=workers) for g in geometries]
    try:
        for batches in zip(*readers):
            index = batches[0][0]
            yield index, [batches[geometries[t.geometry]][1] for t in taps]
    finally:
        for reader in readers:
            reader.close()  # type: ignore[attr-defined]


def flat_features(output: torch.Tensor) -> torch.Tensor:
    """``(B, D)``: every value of each example's output (Kornblith et al.'s choice for a conv layer)."""
    return output.reshape(output.shape[0], -1)


def pooled_features(output: torch.Tensor) -> torch.Tensor:
    """``(B, C)``: a map's channels averaged over positions (``(B, C, H, W)``), other outputs flattened."""
    if output.dim() == 4:
        return output.float().mean(dim=(2, 3))
    return output.float().reshape(output.shape[0], -1)


def collect_pooled(taps: Sequence[Tap], sources: Sequence[Any], *, batch_size: int, progress: bool, desc: str) -> list[dict[str, torch.Tensor]]:
    """Per tap, ``{layer: (N, C) pooled features}`` of every image (float32, CPU): one pass over the
    images for all taps (:func:`pooled_features`; memory ``N`` × the layers' channels)."""
    import contextlib

    from ..hooks import eval_mode
    from ..progress import progress_bar

    parts: list[dict[str, list[torch.Tensor]]] = [{n: [] for n in t.layers} for t in taps]
    with contextlib.ExitStack() as stack:
        for net in {id(t.net): t.net for t in taps}.values():
            stack.enter_context(eval_mode(net))
        stack.enter_context(torch.no_grad())
        bar = stack.enter_context(progress_bar(len(sources), desc, enabled=progress, unit="img"))
        for index, xs in tap_batches(taps, sources, range(len(sources)), batch_size):
            for tap, x, store in zip(taps, xs, parts):
                for name, pooled in read_taps(tap, x, pooled_features).items():
                    store[name].append(pooled.cpu())
            bar.update(len(index))
    return [{n: torch.cat(v) for n, v in store.items()} for store in parts]


def labelled_images(data: Any, labels: Any = None, limit: int | None = None) -> LabelledImages:
    """``data`` as :class:`cnnlens.folders.LabelledImages`: one already, or a folder (class
    subfolders, a labels CSV, MNIST IDX files; ``labels``: the CSV)."""
    if isinstance(data, LabelledImages):
        if labels is not None:
            raise CnnlensError("labels: the images already carry their labels", param="labels")
        return data
    if isinstance(data, (str, Path)):
        return labelled_folder(data, labels=labels, limit=limit)
    raise CnnlensError(f"data must be a labelled folder or cnnlens.folders.LabelledImages, not {type(data).__name__}", param="data")


def image_sources(data: LabelledImages) -> list[Any]:
    """The files (or in-memory images) of ``data``, in order."""
    return list(data.paths) if data.paths is not None else [t for t in data.tensors]  # type: ignore[union-attr]
