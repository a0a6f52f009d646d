"""``cnnlens microscope``: a browsable offline site of a model's layers and units."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CnnlensError
from ._options import batch_size_option, device_option, finish, json_option, model_argument, open_model, seed_option, weights_option

METHODS = ("deconvnet", "guided", "gradient", "none")


@click.command("microscope")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), required=True, help="folder of images (flat or class subfolders) the units are shown on")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True, help="the site folder (new, empty, or an earlier site of the same model and images)")
@click.option("--layers", "-l", "layers", multiple=True, help="layers to show, repeated or comma-separated; all: every layer of the default depth  [default: four spread over the depth]")
@click.option("--units", "-n", "units", default="16", show_default=True, help="units per layer with a page (channels 0..N-1), all, or a comma list of channels (0,36,275)")
@click.option("--top", "-k", "top", type=click.IntRange(min=1, max=1000), default=9, show_default=True, help="top dataset patches per unit")
@click.option("--method", type=click.Choice(METHODS), default="deconvnet", show_default=True, help="projection of each patch (none: no projections)")
@click.option("--steps", type=click.IntRange(min=0), default=128, show_default=True, help="optimization steps of each feature visualization (0: none)")
@click.option("--featvis-size", type=click.IntRange(min=8, max=4096), default=None, help="side of the feature visualizations  [default: 128, or the model's fixed input size]")
@click.option("--tuning/--no-tuning", default=True, show_default=True, help="measure tuning curves with gratings")
@click.option("--attribution", type=click.IntRange(min=0), default=8, show_default=True, help="images on the attribution page (0: no page)")
@click.option("--circuits/--no-circuits", default=True, show_default=True,
              help="on each unit page, the strongest connections by expanded weights: built from the layer before, used by the layer after")  # fmt: skip
@click.option("--relevance/--no-relevance", default=True, show_default=True,
              help="on each unit page, its top patches by LRP relevance for each image's top class and the classes it serves most")  # fmt: skip
@click.option("--concepts", type=click.IntRange(0, 4096), default=0, show_default=True,
              help="a concepts page per layer with K concepts found by NMF (their patches, feature visualizations, importance); 0: none")  # fmt: skip
@click.option("--representations/--no-representations", default=True, show_default=True,
              help="a representations page: CKA of the layers; linear probes by depth when --data is labelled")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use N images spread evenly over the sorted folder")
@click.option("--workers", type=click.IntRange(min=0, max=256), default=0, show_default=True, help="threads that read images ahead of the model")
@weights_option
@seed_option
@device_option
@batch_size_option(32)
@click.option("--overwrite", is_flag=True, help="rebuild the site from scratch (also one of another model, weights or images)")
@json_option
def microscope_command(
    model: str, data: Path, output: Path, layers: tuple[str, ...], units: str, top: int, method: str, steps: int, featvis_size: int | None,
    tuning: bool, attribution: int, circuits: bool, relevance: bool, concepts: int, representations: bool, limit: int | None, workers: int, weights: str | None, seed: int, device: str, batch_size: int,
    overwrite: bool, as_json: bool,
) -> None:  # fmt: skip
    """Build a static site of MODEL's layers and units, on the images in --data.

    The site opens from the file system (SITE/index.html, no server, nothing fetched from the
    network): a model page (report table with receptive fields and costs, their plots, the
    first-layer filters), a page per layer with a grid of its units and a filter box, a page per
    unit with its top-k dataset patches cut by the receptive field, their deconvnet projections,
    its feature visualization, its tuning curves, its circuit (the units of the layers before and
    after it that build it and use it, by expanded weights) and its top patches by LRP relevance
    with the classes it serves most (a second pass; --no-relevance leaves it out), with --concepts K a
    concepts page per layer (K directions found by NMF, each with its patches, feature visualization
    and the classes it raises), an attribution page of a few images, and a
    representations page (CKA similarity of the layers; linear probes by depth when --data has
    class subfolders or a labels.csv). The numbers of every page are beside it as JSON.

    One streaming pass over the images mines the top-k of every channel of all layers at once.
    Run the same command again and only what is missing is computed: a stopped build continues, a
    larger --units or another layer adds pages. Under `torchrun --nproc-per-node N -m cnnlens
    microscope ...` the pass over the images is shared among the processes.

    \b
    Examples:
      cnnlens microscope squeezenet1_0 -w squeezenet.pth --data photos/ -o site/
      cnnlens microscope resnet18 --data val/ -o site/ --layers layer1,layer3 --units 32 --limit 2000
      cnnlens microscope squeezenet1_0 -w none --data photos/ -o random-site/ --steps 64 --no-tuning
      cnnlens microscope alexnet --data photos/ -o every-unit/ --layers all --units all --steps 0
      cnnlens microscope squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ -o site/ --concepts 8
      torchrun --nproc-per-node 4 -m cnnlens microscope resnet50 --data train/ -o site/
    """
    from ..distributed import is_main
    from ..microscope import SiteSettings, build_site

    if "," in units:
        try:
            units = [int(u) for u in units.split(",") if u.strip()]  # type: ignore[assignment]
        except ValueError:
            raise CnnlensError(f"--units must be a number of units, all, or a comma list of channels, not {units!r}") from None
    elif units.strip().lower() != "all":
        try:
            units = int(units)  # type: ignore[assignment]
        except ValueError:
            raise CnnlensError(f"--units must be a number of units, all, or a comma list of channels, not {units!r}") from None
    if not data.exists():
        raise CnnlensError(f"--data {data}: no such file or folder")
    if output.exists() and not output.is_dir():
        raise CnnlensError(f"-o/--output {output} is a file, not a folder for the site")
    net = open_model(model, weights, device=device, seed=seed)
    try:
        settings = SiteSettings(
            method=None if method == "none" else method, featvis_steps=steps, featvis_size=featvis_size, tuning=tuning,
            attribution=attribution, circuits=circuits, relevance=relevance, concepts=concepts, representations=representations, batch_size=batch_size,
            workers=workers,
        )
        site = build_site(
            net, data, output, layers=list(layers) or None, units=units, k=top, settings=settings, limit=limit, seed=seed,
            overwrite=overwrite, progress=True,
        )
    except CnnlensError as exc:
        raise CnnlensError(str(exc).replace("pass overwrite", "pass --overwrite"), param=exc.param) from None
    if not is_main():
        return
    click.echo(f"wrote {site.pages} pages: open {site.index}", err=True)
    finish(site, as_json=as_json, output=None, overwrite=overwrite, text="")
