"""A microscope for any model: a static site of its layers and units, built on the user's own images.

For each chosen layer, every shown unit gets a page with its top dataset patches (cut by the
receptive field, as Zeiler & Fergus 2014), their deconvnet projections, its feature visualization
(Olah et al. 2017) and its tuning curves to gratings (Hubel & Wiesel's measurements); the model
page has the report (costs and receptive fields) and the first-layer filters, and an attribution
page shows where the network looks in a few of the images. In the spirit of OpenAI Microscope, but
for any model of the registry (or any ``nn.Module``), on one's own machine, opened from the file
system.

Example:
    >>> import cnnlens, torch
    >>> from cnnlens.microscope import SiteSettings, build_site
    >>> net = cnnlens.create_model("squeezenet1_0", seed=0)
    >>> site = build_site(net, torch.rand(4, 3, 64, 64), "site/", layers=["features.3"], units=2,
    ...                   settings=SiteSettings(featvis_steps=2, tuning=False, attribution=0), progress=False)  # doctest: +SKIP
    >>> site.index  # doctest: +SKIP
    PosixPath('site/index.html')
"""

from __future__ import annotations

from .build import DEFAULT_METHODS, GRATING_BADGE_SHARE, Site, SiteSettings, build_site, site_layers
from .store import SiteStore, slug

__all__ = ["GRATING_BADGE_SHARE", "SiteSettings", "build_site", "site_layers"]
