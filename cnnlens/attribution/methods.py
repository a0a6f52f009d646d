"""The attribution methods: one ``(N, H, W)`` map per image in the input's pixel space.

==========================  =================================================================================
``gradcam``                 Selvaraju et al. 2017: ``relu(sum_c mean(dy/dA_c) A_c)`` at a spatial layer,
                            upsampled bilinearly (captum ``LayerGradCam`` + ``LayerAttribution.interpolate``)
``gradcam++``               Chattopadhay et al. 2018: channel weights ``sum(alpha * relu(dy/dA))`` with the
                            closed-form ``alpha`` of the paper (as pytorch-grad-cam's ``GradCAMPlusPlus``)
``guided-gradcam``          guided backprop times the upsampled Grad-CAM (Selvaraju et al.); the guided rule
                            on every ReLU-family call, functional ones included (:func:`cnnlens.units.relu_rule`)
``guided-backprop``         Springenberg et al. 2015, the same rule alone (used by the sanity checks)
``saliency``                Simonyan et al. 2014: ``|dy/dx|`` (captum ``Saliency``)
``integrated-gradients``    Sundararajan et al. 2017 from the normalization mean (the network's zero input)
                            or a black image (captum ``IntegratedGradients``, Gauss-Legendre steps)
``smoothgrad``              Smilkov et al. 2017: ``|dy/dx|`` averaged over noisy copies (captum ``NoiseTunnel``)
``occlusion``               Zeiler & Fergus 2014: the drop of the class score when a square of the image is
                            replaced by the normalization mean (captum ``Occlusion``)
``lrp``                     Bach et al. 2015: layer-wise relevance propagation of the class logit with a
                            composite of rules (default ``epsilon-plus-flat``, as zennit's
                            ``EpsilonPlusFlat``), applied per call (:mod:`cnnlens.relevance`)
==========================  =================================================================================

``y`` is the target class's logit (before the softmax, as in Grad-CAM). Colour channels are reduced as
each method's paper shows its maps: the largest ``|.|`` over channels for the gradient methods
(Simonyan et al.), the sum for integrated gradients (so a map sums to ``y(x) - y(baseline)``), the mean
for occlusion (every channel of a pixel gets the same score drop), the sum for LRP (a map sums to
the logit, less what biases and stabilisers absorb). Grad-CAM maps are one channel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_int, check_number
from ..errors import CnnlensError, did_you_mean
from ..hooks import eval_mode
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import class_logits, pixel_net, unwrap
from ..pixels import Preprocessing
from ..units.deconv import unit_gradients
from .spatial import (
    Grid,
    LayerGradients,
    attribution_layer,
    layer_gradients,
)
from ..gradients import fill_targets

__all__ = [
    "CAM_METHODS",
    "DEFAULT_METHODS",
    "METHODS",
    "Attributor",
    "BatchMaps",
    "AttributionSettings",
    "check_methods",
    "gradcam",
    "reduce_channels",
]

METHODS = (
    "gradcam",
    "gradcam++",
    "guided-gradcam",
    "occlusion",
    "saliency",
    "integrated-gradients",
    "smoothgrad",
    "guided-backprop",
    "lrp",
)
IG_BASELINES = ("black", "mean")  # integrated gradients from pixels 0, or from the normalization mean
DEFAULT_METHODS = METHODS[:7]  # what the command draws by default
CAM_METHODS = ("gradcam", "gradcam++", "guided-gradcam")  # the methods that read a layer
_ALIASES = {
    "grad-cam": "gradcam",
    "grad-cam++": "gradcam++",
    "gradcampp": "gradcam++",
    "guided-grad-cam": "guided-gradcam",
    "guidedgradcam": "guided-gradcam",
    "guided": "guided-backprop",
    "ig": "integrated-gradients",
    "integratedgradients": "integrated-gradients",
    "gradient": "saliency",
    "relevance": "lrp",
    "smooth-grad": "smoothgrad",
}
# how colour channels are reduced to one map (module docstring)
_REDUCE = {
    "gradcam": "one",
    "gradcam++": "one",
    "guided-gradcam": "max-abs",
    "guided-backprop": "max-abs",
    "saliency": "max-abs",
    "smoothgrad": "max-abs",
    "integrated-gradients": "sum",
    "occlusion": "mean",
    "lrp": "sum",
}


def check_methods(methods: str | Sequence[str], name: str = "method") -> tuple[str, ...]:
    """``methods`` (one name or several; any case, ``_`` or ``-``, aliases such as ``ig``) as known names."""
    items = [methods] if isinstance(methods, str) else list(methods)
    if not items:
        raise CnnlensError(f"{name} is empty; give one or more of {', '.join(METHODS)}", param=name)
    out: list[str] = []
    for m in items:
        if not isinstance(m, str):
            raise CnnlensError(f"{name} must be method names such as gradcam, not {m!r}", param=name)
        key = m.strip().lower().replace("_", "-").replace(" ", "-")
        key = _ALIASES.get(key, key)
        if key not in METHODS:
            raise CnnlensError(f"{name}: unknown method {m!r}{did_you_mean(key, METHODS)}; one of {', '.join(METHODS)}", param=name)
        if key not in out:
            out.append(key)
    return tuple(out)


@dataclass(frozen=True)
class AttributionSettings:
    """How :func:`cnnlens.attribute` computes its maps and checks: ``attribute(..., settings=AttributionSettings(ig_steps=64))``.

    - ``ig_steps``, ``ig_baseline``: integration steps of integrated gradients, and where the path
      starts: ``"mean"`` (the normalization mean: the network's zero input, and what deletion fills
      in) or ``"black"`` (pixels 0, as Sundararajan et al.).
    - ``smoothgrad_samples``, ``smoothgrad_noise``: SmoothGrad's noisy copies and their standard
      deviation in pixel units (0.15 = 15 % of the [0, 1] range; Smilkov et al. recommend 10-20 %).
    - ``occlusion_window``, ``occlusion_stride``: the occluding square's side and step in pixels
      (None: an eighth of the image's shorter side, and half the window).
    - ``faithfulness_steps``: steps of the deletion and insertion curves (``checks=["faithfulness"]``);
      ``sanity_blocks``: at most this many blocks re-initialised by the randomization test
      (``checks=["sanity"]``; None: every block).
    - ``lrp_composite``, ``lrp_epsilon``, ``lrp_gamma``: LRP's rules (:data:`cnnlens.relevance.COMPOSITES`),
      the fully connected layers' epsilon and the gamma rule's gamma.
    - ``batch_size``: images per pass; ``fit``: ``"crop"``, ``"resize"`` or ``"none"`` (None:
      ``"none"`` for tensors, taken as they are, ``"crop"`` for files, folders, PIL images and arrays).
    """

    ig_steps: int = 32
    ig_baseline: str = "mean"
    smoothgrad_samples: int = 25
    smoothgrad_noise: float = 0.15
    occlusion_window: int | None = None
    occlusion_stride: int | None = None
    faithfulness_steps: int = 16
    sanity_blocks: int | None = None
    batch_size: int = 16
    fit: str | None = None
    lrp_composite: str = "epsilon-plus-flat"
    lrp_epsilon: float = 1e-6
    lrp_gamma: float = 0.25

    def checked(self) -> AttributionSettings:
        """A copy with every number checked (one-line errors naming the parameter)."""
        window = None if self.occlusion_window is None else check_int(self.occlusion_window, "occlusion_window", low=1, high=65536)
        stride = None if self.occlusion_stride is None else check_int(self.occlusion_stride, "occlusion_stride", low=1, high=65536)
        from ..relevance.rules import composite as lrp_composite

        lrp_composite(self.lrp_composite)  # an unknown composite is named here, before any work
        if self.ig_baseline not in IG_BASELINES:
            raise CnnlensError(f"ig_baseline must be one of {', '.join(IG_BASELINES)}, not {self.ig_baseline!r}", param="ig_baseline")
        return replace(
            self,
            ig_steps=check_int(self.ig_steps, "ig_steps", low=1, high=10_000),
            smoothgrad_samples=check_int(self.smoothgrad_samples, "smoothgrad_samples", low=1, high=10_000),
            smoothgrad_noise=check_number(self.smoothgrad_noise, "smoothgrad_noise", low=0.0, high=10.0),
            occlusion_window=window,
            occlusion_stride=stride,
            faithfulness_steps=check_int(self.faithfulness_steps, "faithfulness_steps", low=1, high=100_000),
            sanity_blocks=None if self.sanity_blocks is None else check_int(self.sanity_blocks, "sanity_blocks", low=1),
            batch_size=check_int(self.batch_size, "batch_size", low=1, high=65536),
            lrp_epsilon=check_number(self.lrp_epsilon, "lrp_epsilon", low=0.0, high=1e6),
            lrp_gamma=check_number(self.lrp_gamma, "lrp_gamma", low=0.0, high=1e6),
        )

    def window(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(window, stride)`` of occlusion for an image of ``size``."""
        side = min(size)
        window = self.occlusion_window or max(1, round(side / 8))
        if window > side:
            raise CnnlensError(f"occlusion_window {window} is larger than the {size[0]}x{size[1]} image", param="occlusion_window")
        stride = self.occlusion_stride or max(1, window // 2)
        return window, stride

    def to_dict(self, methods: Sequence[str], size: tuple[int, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "integrated-gradients" in methods:
            out.update(ig_steps=self.ig_steps, ig_baseline=self.ig_baseline, ig_method="gausslegendre")
        if "smoothgrad" in methods:
            out.update(smoothgrad_samples=self.smoothgrad_samples, smoothgrad_noise=self.smoothgrad_noise)
        if "occlusion" in methods:
            window, stride = self.window(size)
            out.update(occlusion_window=window, occlusion_stride=stride, occlusion_fill="normalization mean")
        if "lrp" in methods:
            out.update(lrp_composite=self.lrp_composite, lrp_epsilon=self.lrp_epsilon, lrp_gamma=self.lrp_gamma)
        return out


def reduce_channels(method: str, raw: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` attributions of ``method`` as ``(N, H, W)`` maps (module docstring)."""
    how = _REDUCE[method]
    if how == "one":
        return raw[:, 0]
    if how == "max-abs":
        return raw.abs().amax(1)
    if how == "sum":
        return raw.sum(1)
    return raw.mean(1)


def gradcam(lg: LayerGradients, size: tuple[int, int], *, plus: bool = False) -> torch.Tensor:
    """Grad-CAM (or Grad-CAM++) of one pass, ``(N, 1, H, W)``: ReLU, then bilinear upsampling
    (``align_corners=False``, as captum's ``LayerAttribution.interpolate(..., "bilinear")``)."""
    a, g = lg.activations.float(), lg.gradients.float()
    if plus:
        g2 = g * g
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g + 1e-6
        alpha = torch.where(g != 0, g2 / denom, torch.zeros_like(g))
        weights = (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)
    else:
        weights = g.mean((2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(1, keepdim=True))
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)


@dataclass
class BatchMaps:
    """Maps of one batch: ``maps[method]`` ``(N, H, W)``, the targets, the softmax probabilities
    ``(N, classes)``, integrated gradients' completeness error per image, ReLU-family calls routed."""

    maps: dict[str, torch.Tensor]
    targets: torch.Tensor
    probabilities: torch.Tensor
    ig_delta: torch.Tensor | None = None
    relu_calls: int | None = None


class Attributor:
    """Computes the maps of ``methods`` batch by batch for one model (the engine of
    :func:`cnnlens.attribution.attribute` and of the sanity checks).

    Args:
        model: any image classifier; left as it was.
        preprocessing: its normalization (the caller's choice: ``model_info(model).preprocessing``).
        methods: checked method names.
        layer: the layer of the class-activation methods (None: the default, :func:`attribution_layer`).
        settings: :class:`AttributionSettings`, checked.
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, methods: Sequence[str], layer: str | nn.Module | None, settings: AttributionSettings) -> None:
        self.model = model
        self.net, _ = unwrap(model)
        self.preprocessing = preprocessing
        self.pixnet = pixel_net(model, preprocessing)
        self.methods = tuple(methods)
        self.settings = settings
        self.device = model_device(self.net)
        self.dtype = model_dtype(self.net)
        needs_layer = any(m in CAM_METHODS for m in self.methods)
        if layer is not None and not needs_layer:
            get_layer(self.net, layer)  # a layer that is given must exist, also when no method here uses it
        self.layer = attribution_layer(self.net, self.pixnet, preprocessing, layer) if needs_layer else None
        self.grid: Grid | None = None  # how the layer's output was read, once a batch has run

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(self.net), torch.no_grad():
            return class_logits(self.pixnet, x).detach()

    def __call__(self, pixels: torch.Tensor, targets: Sequence[int | None] | torch.Tensor | None = None) -> BatchMaps:
        """Maps of a batch of prepared pixels ``(N, C, H, W)``; ``targets`` per image (None: its top class)."""
        x = pixels.to(self.device, self.dtype)
        size = (x.shape[-2], x.shape[-1])
        given = self._given(targets, x.shape[0])
        cam: torch.Tensor | None = None
        if self.layer is not None:
            lg = layer_gradients(self.net, self.pixnet, x, self.layer, given)
            self.grid = lg.grid
            logits, t = lg.logits, lg.targets
            cam_maps = {}
            if "gradcam" in self.methods or "guided-gradcam" in self.methods:
                cam = gradcam(lg, size)
                cam_maps["gradcam"] = cam
            if "gradcam++" in self.methods:
                cam_maps["gradcam++"] = gradcam(lg, size, plus=True)
        else:
            logits = self.logits(x)
            t = fill_targets(logits, given)
            cam_maps = {}
        out = BatchMaps({}, t.cpu(), F.softmax(logits.float(), 1).cpu())
        guided: torch.Tensor | None = None
        for method in self.methods:
            if method in ("gradcam", "gradcam++"):
                raw = cam_maps[method]
            elif method in ("guided-gradcam", "guided-backprop"):
                if guided is None:
                    got = unit_gradients(self.model, x, "", channel=t.cpu(), method="guided", preprocessing=self.preprocessing)
                    guided, out.relu_calls = got.gradient.to(x.device), got.relu_calls
                raw = guided * cam if method == "guided-gradcam" else guided  # type: ignore[operator]
            elif method == "lrp":
                raw = self._lrp(x, t)
            else:
                raw = self._captum(method, x, t, out)
            out.maps[method] = reduce_channels(method, raw.detach().float()).cpu()
        return out

    @staticmethod
    def _given(targets: Any, n: int) -> torch.Tensor | None:
        """Targets as a ``(N,)`` tensor with -1 where an image takes its top class; None for all top."""
        if targets is None:
            return None
        if isinstance(targets, torch.Tensor):
            t = targets.to(torch.long).reshape(-1).cpu()
        else:
            t = torch.tensor([-1 if v is None else int(v) for v in targets], dtype=torch.long)
        if t.numel() != n:
            raise CnnlensError(f"target has {t.numel()} entries for {n} images", param="target")
        return None if bool((t < 0).all()) else t

    def _lrp(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from ..relevance import make_composite, propagate

        s = self.settings
        rules = make_composite(self.model, s.lrp_composite, epsilon=s.lrp_epsilon, gamma=s.lrp_gamma, preprocessing=self.preprocessing)
        got = propagate(self.model, x, t, composite=rules, preprocessing=self.preprocessing, records=False)
        assert got.relevance is not None
        return got.relevance

    def _captum(self, method: str, x: torch.Tensor, t: torch.Tensor, out: BatchMaps) -> torch.Tensor:
        import captum.attr as ca

        s = self.settings
        tt = t.to(x.device)
        inp = x.detach().clone()
        with eval_mode(self.net), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # captum's notes on hooks and requires_grad
            if method == "saliency":
                return ca.Saliency(self.pixnet).attribute(inp, target=tt, abs=True)
            if method == "smoothgrad":
                nt = ca.NoiseTunnel(ca.Saliency(self.pixnet))
                return nt.attribute(
                    inp, nt_type="smoothgrad", nt_samples=s.smoothgrad_samples, stdevs=s.smoothgrad_noise,
                    target=tt, abs=True, nt_samples_batch_size=max(1, s.batch_size // x.shape[0]),
                )
            if method == "integrated-gradients":
                ig = ca.IntegratedGradients(self.pixnet)
                if s.ig_baseline == "black":
                    base = torch.zeros_like(inp)
                else:
                    base = torch.tensor(self.preprocessing.mean, dtype=inp.dtype, device=inp.device).view(1, -1, 1, 1).expand_as(inp).contiguous()
                attr, delta = ig.attribute(
                    inp, baselines=base, target=tt, n_steps=s.ig_steps, method="gausslegendre",
                    internal_batch_size=max(s.batch_size, x.shape[0]), return_convergence_delta=True,
                )
                out.ig_delta = delta.detach().float().cpu()
                return attr
            window, stride = s.window((x.shape[-2], x.shape[-1]))
            c = x.shape[1]
            mean = torch.tensor(self.preprocessing.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            per_eval = max(1, s.batch_size // x.shape[0])
            return ca.Occlusion(self.pixnet).attribute(
                inp, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                baselines=mean.expand_as(inp).contiguous(), target=tt, perturbations_per_eval=per_eval,
            )
