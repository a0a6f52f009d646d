"""Sanity checks for saliency maps (Adebayo et al. 2018): the cascading model-randomization test.

The model's blocks are re-initialised one after the other from the top (the classifier) down,
cumulatively, and each method's map is computed again on every partly random model. The Spearman
rank correlation between the map of the trained model and that of the randomized one (on absolute
values, as in the paper's main figures) says how much the method depends on what the model learned:
a method that passes falls towards 0 as soon as the top layers are random; one whose maps stay put
(guided backprop, in the paper) shows image structure, not the model's reasoning.

A *block* is a group of layers with parameters, named by the first parts of their dotted names: the
coarsest grouping with at least :data:`MIN_BLOCKS` groups (``layer4.1`` in a ResNet, ``features.17``
in MobileNetV2, ``inception4e`` in GoogLeNet, ``encoder.layers.encoder_layer_11`` in a ViT), in the
order the forward pass enters them. Re-initialising calls each layer's own ``reset_parameters()``
(PyTorch's default initialisation; BatchNorm back to the identity) and draws any other parameter
from N(0, 0.02²). The work runs on a copy: the user's model is untouched. The targets stay the
trained model's. A map that is constant (no rank information, e.g. an all-zero Grad-CAM) has
correlation 0 with any other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ..checks import check_int, check_seed
from ..errors import CnnlensError
from ..hooks import eval_mode, hooked
from ..layers import model_device, model_dtype
from ..pixelnet import unwrap
from ..progress import progress_bar
from ..registry import ModelInfo
from ..results import Result
from ..seeds import seeded
from .methods import Attributor, check_methods

if TYPE_CHECKING:
    from .maps import Attribution

__all__ = ["MIN_BLOCKS", "RandomizationTest", "cascade_blocks", "randomization_test", "reinitialize", "spearman"]

MIN_BLOCKS = 8


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean of their positions), as scipy's ``rankdata``."""
    sorted_v, idx = torch.sort(v)
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty(v.numel(), dtype=torch.float64)
    ranks[idx] = mean_rank[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (flattened); 0 when either is constant."""
    ra, rb = _ranks(a.reshape(-1).double()), _ranks(b.reshape(-1).double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return 0.0 if denom == 0 else float((ra * rb).sum() / denom)


def _own_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def cascade_blocks(net: nn.Module, pixnet: nn.Module, x: torch.Tensor) -> list[tuple[str, list[str]]]:
    """``[(block name, [layer names])]`` top block first (module docstring), from one forward pass on ``x``."""
    order: list[str] = []
    holders = [(n, m) for n, m in net.named_modules() if n and _own_params(m)]

    def enter(name: str) -> Any:
        def hook(mod: nn.Module, args: Any) -> None:
            if name not in order:
                order.append(name)

        return hook

    with hooked([(m, enter(n)) for n, m in holders], pre=True), torch.no_grad(), eval_mode(net):
        pixnet(x)
    if not order:
        raise CnnlensError("the model has no layer with parameters to re-initialise", param="model")
    depth = max(len(n.split(".")) for n in order)
    groups: dict[str, list[str]] = {}
    for d in range(1, depth + 1):
        groups = {}
        for name in order:
            groups.setdefault(".".join(name.split(".")[:d]), []).append(name)
        if len(groups) >= MIN_BLOCKS:
            break
    return list(reversed(list(groups.items())))


def reinitialize(net: nn.Module, layers: Sequence[str]) -> None:
    """Re-initialise the parameters of ``layers`` of ``net`` in place (module docstring)."""
    with torch.no_grad():
        for name in layers:
            module = net.get_submodule(name)
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for p in module.parameters(recurse=False):
                    nn.init.normal_(p, std=0.02)


@dataclass(repr=False)
class RandomizationTest(Result):
    """What :func:`randomization_test` returns.

    Attributes:
        blocks: the blocks re-initialised, top first; step ``k`` has the first ``k`` of them random.
        correlations: ``correlations[method]`` ``(N, len(blocks) + 1)``: Spearman rank correlation of
            each image's map with its trained map after each step (column 0: the trained model, 1).
        examples: ``examples[method]`` ``(len(blocks) + 1, H, W)``: the first image's map after each step.
        example_image: the first image ``(C, H, W)``.
    """

    info: ModelInfo
    methods: tuple[str, ...]
    blocks: list[str]
    correlations: dict[str, torch.Tensor]
    examples: dict[str, torch.Tensor]
    example_image: torch.Tensor
    image_names: list[str]
    layer: str | None = None
    seed: int | None = None
    block_layers: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def mean_curve(self, method: str) -> torch.Tensor:
        """``(len(blocks) + 1,)`` the mean rank correlation over the images after each step."""
        return self.correlations[method].mean(0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "layer": self.layer,
            "seed": self.seed,
            "test": "cascading model randomization (Adebayo et al. 2018), top block first",
            "correlation": "Spearman rank correlation of |map| with the trained model's |map|",
            "reinitialisation": "each layer's reset_parameters(); other parameters N(0, 0.02^2)",
            "blocks": ["(trained)", *self.blocks],
            "images": list(self.image_names),
            "methods": {
                m: {
                    "mean": self.mean_curve(m),
                    "std": self.correlations[m].std(0) if len(self.image_names) > 1 else torch.zeros(len(self.blocks) + 1),
                    "per_image": self.correlations[m],
                }
                for m in self.methods
            },
        }

    def figure(self, *, max_columns: int = 6, title: str | None = None) -> Any:
        """Rank correlation against the blocks randomized, and the first image's maps along the way."""
        from .plots import plot_randomization

        return plot_randomization(self, max_columns=max_columns, title=title)

    def _summary(self) -> dict[str, Any]:
        return {
            "model": self.info.label,
            "blocks": len(self.blocks),
            "images": len(self.image_names),
            **{f"{m} (last)": round(float(self.mean_curve(m)[-1]), 3) for m in self.methods},
        }


def randomization_test(
    model: nn.Module,
    attribution: Attribution,
    *,
    methods: str | Sequence[str] | None = None,
    max_blocks: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> RandomizationTest:
    """The cascading model-randomization test of Adebayo et al. 2018 on the maps of ``attribution``.

    Args:
        model: the trained model the maps were computed on; it is copied, never changed.
        attribution: images, targets, trained maps, layer and settings
            (:func:`cnnlens.attribution.attribute`).
        methods: the methods to test (default: those of ``attribution``; others are computed on the
            trained model first).
        max_blocks: stop after this many blocks (default: down to the first layer).
        seed: the re-initialisation's random numbers (and SmoothGrad's noise).
        progress: report progress.

    Returns:
        :class:`RandomizationTest`.
    """
    wanted = attribution.methods if methods is None else check_methods(methods, "methods")
    if max_blocks is not None:
        max_blocks = check_int(max_blocks, "max_blocks", low=1)
    if seed is not None:
        seed = check_seed(seed)
    net, _ = unwrap(model)
    prep = attribution.preprocessing
    work = copy.deepcopy(net)
    device = model_device(work)
    missing = [m for m in wanted if m not in attribution.by_method]
    layer = attribution.layer
    trained_engine = Attributor(model, prep, missing, layer, attribution.settings) if missing else None
    if trained_engine is not None and layer is None:
        layer = trained_engine.layer
    engine = Attributor(work, prep, wanted, layer, attribution.settings)
    images = attribution.images
    n = images.shape[0]
    bs = attribution.settings.batch_size
    dtype = model_dtype(work)
    blocks = cascade_blocks(work, engine.pixnet, images[:1].to(device, dtype))
    if max_blocks is not None:
        blocks = blocks[:max_blocks]
    targets = attribution.targets

    def maps_of(eng: Attributor, methods: Sequence[str]) -> dict[str, torch.Tensor]:
        parts = [eng(images[s : s + bs], targets[s : s + bs]).maps for s in range(0, n, bs)]
        return {m: torch.cat([p[m] for p in parts]) for m in methods}

    with seeded(seed, device):
        trained = {m: attribution.by_method[m] for m in wanted if m in attribution.by_method}
        if trained_engine is not None:
            trained.update(maps_of(trained_engine, missing))
        correlations = {m: torch.ones(n, len(blocks) + 1) for m in wanted}
        examples = {m: [trained[m][0]] for m in wanted}
        with progress_bar(len(blocks) * n, "randomization test", enabled=progress, unit="map") as bar:
            for k, (_, layers) in enumerate(blocks, start=1):
                reinitialize(work, layers)
                now = maps_of(engine, wanted)
                for m in wanted:
                    correlations[m][:, k] = torch.tensor([spearman(trained[m][i].abs(), now[m][i].abs()) for i in range(n)])
                    examples[m].append(now[m][0])
                bar.update(n)
    return RandomizationTest(
        info=attribution.info,
        methods=tuple(wanted),
        blocks=[b for b, _ in blocks],
        correlations=correlations,
        examples={m: torch.stack(v) for m, v in examples.items()},
        example_image=images[0].clone(),
        image_names=list(attribution.image_names),
        layer=engine.layer,
        seed=seed,
        block_layers={b: list(ls) for b, ls in blocks},
    )
