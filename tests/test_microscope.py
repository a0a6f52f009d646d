"""The microscope site: every page parses, every local link and picture resolves, JSON beside every
page, nothing from the network; a second build recomputes nothing and a larger one only what is
new; a stopped build resumes; bad input fails before work; a real browser shows the pages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.microscope import SiteSettings, build_site, site_layers
from cnnlens.testing import model_state

LAYERS = ["features.0", "features.3"]
KNOBS = {"featvis_steps": 2, "featvis_size": 32, "attribution": 2, "attribution_methods": ["gradcam", "saliency"]}
FAST = {"settings": SiteSettings(**KNOBS), "progress": False}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnnlens.images import save_image

    root = tmp_path_factory.mktemp("mscope") / "imgs"
    g = torch.Generator().manual_seed(0)
    for i in range(5):
        img = torch.rand(3, 40, 44, generator=g)
        img[i % 3, 10 + i : 20 + i, :] = 1.0  # some structure
        save_image(img, root / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def net(file_model: str) -> torch.nn.Module:
    return cnnlens.create_model(file_model, seed=0)


@pytest.fixture(scope="module")
def site(net: torch.nn.Module, images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cnnlens.microscope.Site, dict]:
    before = model_state(net)
    root = tmp_path_factory.mktemp("built") / "site"
    result = build_site(net, images, root, layers=LAYERS, units=4, k=3, **FAST)
    assert model_state(net) == before  # weights, modes, hooks, grads as they were
    return root, result, before


class _Page(HTMLParser):
    """Collects links and pictures; checks that every non-void tag is closed in order."""

    VOID = {"meta", "link", "img", "input", "br", "hr", "source", "wbr", "area", "base", "col", "embed", "track"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.refs: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.refs.append(a[key])  # type: ignore[arg-type]
        if a.get("id"):
            self.ids.append(a["id"])  # type: ignore[arg-type]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()


def _parse(path: Path) -> _Page:
    page = _Page()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>"), path
    page.feed(text)
    page.close()
    assert not page.errors, f"{path}: {page.errors[:3]}"
    assert not page.stack, f"{path}: unclosed {page.stack}"
    assert len(page.ids) == len(set(page.ids)), f"{path}: duplicate ids"
    return page


def test_every_page_parses_and_every_local_link_and_picture_resolves(site: tuple) -> None:
    root, result, _ = site
    pages = sorted(root.rglob("*.html"))
    assert result.pages == len(pages) == 1 + 1 + 1 + 2 + 2 * 4  # model, attribution, representations, 2 layers, 2 x 4 units
    seen_pictures = set()
    for path in pages:
        page = _parse(path)
        assert page.refs, path
        for ref in page.refs:
            url = urlparse(ref)
            assert not url.scheme and not url.netloc and not ref.startswith("//"), f"{path}: {ref} leaves the site"
            target = (path.parent / url.path).resolve()
            assert target.is_file(), f"{path}: {ref} does not resolve"
            assert root.resolve() in target.parents, f"{path}: {ref} points outside the site"
            if target.suffix == ".png":
                seen_pictures.add(target)
        beside = path.with_suffix(".json")
        assert beside.is_file(), f"no JSON beside {path}"
        json.loads(beside.read_text(encoding="utf-8"))
    assert len(seen_pictures) >= 2 * 4 * (1 + 3 + 3 + 1)  # per unit: featvis, 3 crops, 3 projections, tuning


def test_pages_link_their_neighbours(site: tuple) -> None:
    root, _, _ = site
    layer = _parse(root / "layers" / "features.0.html")
    assert "features.3.html" in layer.refs and "../index.html" in layer.refs
    assert [r for r in layer.refs if r.startswith("../units/features.0/")] != []
    unit = _parse(root / "units" / "features.0" / "1.html")
    assert {"0.html", "2.html", "../../layers/features.0.html", "../../index.html"} <= set(unit.refs)
    first = _parse(root / "units" / "features.0" / "0.html")
    assert "1.html" in first.refs and not any(r.endswith("/-1.html") for r in first.refs)
    index = _parse(root / "index.html")
    assert {"layers/features.0.html", "layers/features.3.html", "images.html", "img/report.png", "img/filters.png"} <= set(index.refs)


def test_unit_json_holds_the_numbers_of_its_page(site: tuple, images: Path, net: torch.nn.Module) -> None:
    root, _, _ = site
    data = json.loads((root / "units" / "features.3" / "2.json").read_text())
    assert data["unit"] == "features.3:2" and data["model"] == net.cnnlens_info.name
    assert len(data["patches"]) == 3
    acts = [p["activation"] for p in data["patches"]]
    assert acts == sorted(acts, reverse=True) and data["top_activation"] == acts[0]
    # the same top-k as patches of that unit alone (one pass over the data for both layers, same numbers)
    alone = cnnlens.units.top_patches(net, 'features.3:2', images, k=3, progress=False, settings=cnnlens.units.PatchSettings(crops=False))
    assert [p.activation for p in alone.patches[2]] == acts
    assert [Path(p.image).name for p in alone.patches[2]] == [p["image_name"] for p in data["patches"]]
    assert data["tuning"]["classification"] in ("simple", "complex", "unselective")
    assert 0.0 <= data["tuning"]["osi"] <= 1.0
    assert data["featvis"]["objective"] is not None
    crop = cnnlens.images.load_image(root / "units" / "features.3" / "2" / "patch-0.png")
    rf = alone.receptive_field.size
    assert tuple(crop.shape[1:]) == tuple(rf)  # the crop is the unit's receptive field


def test_layer_json_covers_every_channel(site: tuple) -> None:
    root, _, _ = site
    data = json.loads((root / "layers" / "features.3.json").read_text())
    assert data["n_channels"] == 16 and [c["channel"] for c in data["channels"]] == list(range(16))
    assert [u["channel"] for u in data["units"]] == [0, 1, 2, 3]


def test_a_second_build_recomputes_nothing_and_a_larger_one_only_the_new(site: tuple, net: torch.nn.Module, images: Path, tmp_path: Path) -> None:
    root, _, _ = site
    copy = tmp_path / "site"
    shutil.copytree(root, copy)
    html = {p: p.read_bytes() for p in copy.rglob("*.html")}
    again = build_site(net, images, copy, layers=LAYERS, units=4, k=3, **FAST)
    assert again.stages["mining"]["computed"] == [] and again.stages["featvis"]["computed"] == {"features.0": 0, "features.3": 0}
    assert again.stages["tuning"]["computed"] == {"features.0": 0, "features.3": 0} and again.stages["patches"]["computed"] == {}
    assert again.stages["attribution"]["computed"] == 0
    assert {p: p.read_bytes() for p in copy.rglob("*.html")} == html  # the same pages, byte for byte
    more = build_site(net, images, copy, layers=LAYERS, units=6, k=3, **FAST)
    assert more.stages["mining"]["computed"] == []  # every channel was mined the first time
    assert more.stages["featvis"]["computed"] == {"features.0": 2, "features.3": 2}
    assert more.stages["patches"]["computed"] == {"features.0": 2, "features.3": 2}
    assert (copy / "units" / "features.3" / "5.html").is_file()


def test_a_stopped_build_resumes_after_the_mining(net: torch.nn.Module, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlens.featvis

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cnnlens.featvis, "render", stop)
    with pytest.raises(KeyboardInterrupt):
        build_site(net, images, tmp_path / "site", layers=LAYERS, units=2, k=3, **FAST)
    assert (tmp_path / "site" / ".cnnlens" / "mined" / "features.3.json").is_file()  # kept: not bad input
    monkeypatch.undo()
    done = build_site(net, images, tmp_path / "site", layers=LAYERS, units=2, k=3, **FAST)
    assert done.stages["mining"]["computed"] == [] and done.stages["mining"]["reused"] == LAYERS
    assert done.stages["featvis"]["computed"] == {"features.0": 2, "features.3": 2}


def test_another_model_or_folder_is_refused_unless_overwrite(site: tuple, images: Path, file_model: str, tmp_path: Path) -> None:
    root, _, _ = site
    copy = tmp_path / "site"
    shutil.copytree(root, copy)
    other = cnnlens.create_model(file_model, seed=1)
    with pytest.raises(cnnlens.CnnlensError, match="weights .*pass overwrite"):
        build_site(other, images, copy, layers=LAYERS, units=1, **FAST)
    rebuilt = build_site(other, images, copy, layers=LAYERS, units=1, k=3, overwrite=True, **{**FAST, "settings": SiteSettings(**{**KNOBS, "featvis_steps": 0, "attribution": 0})})
    assert rebuilt.stages["mining"]["computed"] == LAYERS
    assert not (copy / "units" / "features.3" / "3.html").exists()  # the old site's pages are gone
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(cnnlens.CnnlensError, match="holds no cnnlens site"):
        build_site(other, images, tmp_path / "mine", layers=LAYERS, units=1, **FAST)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": ["featurs.3"]}, "features.3"),
        ({"layers": ["classifier"]}, "not a \\(B, C, H, W\\) map"),
        ({"units": 0}, "units"),
        ({"k": 0}, "k"),
        ({"featvis_steps": -1}, "featvis_steps"),
        ({"method": "deconv"}, "deconvnet"),
        ({"attribution_methods": ["gradkam"]}, "gradcam"),
    ],
)
def test_bad_arguments_fail_before_any_work(net: torch.nn.Module, images: Path, tmp_path: Path, kwargs: dict, message: str) -> None:
    knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in SiteSettings.__dataclass_fields__}
    args = {**FAST, "layers": LAYERS, **kwargs, "settings": SiteSettings(**{**KNOBS, **knobs})}
    with pytest.raises(cnnlens.CnnlensError, match=message):
        build_site(net, images, tmp_path / "site", **args)
    assert not (tmp_path / "site").exists()


def test_an_unreadable_image_leaves_no_site_behind(net: torch.nn.Module, images: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    shutil.copytree(images, folder)
    (folder / "zz.png").write_bytes(b"not a png")
    with pytest.raises(cnnlens.CnnlensError, match="zz.png"):
        build_site(net, folder, tmp_path / "site", layers=LAYERS, units=1, **FAST)
    assert not (tmp_path / "site").exists()


def test_default_layers_spread_over_the_depth() -> None:
    assert site_layers(cnnlens.create_model("squeezenet1_0", seed=0)) == ["features.0", "features.5", "features.9", "classifier.1"]
    assert site_layers(cnnlens.create_model("resnet18", seed=0)) == ["conv1", "layer1", "layer3", "layer4"]
    # Conv2dNormActivation is a conv block, not a normalization; the last block's output is shown
    assert site_layers(cnnlens.create_model("mobilenet_v2", seed=0)) == ["features.0", "features.6", "features.12", "features.18"]


def test_cli_builds_the_site_and_prints_json(file_model: str, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    args = ["microscope", file_model, "-w", "none", "--data", str(images), "-o", str(out), "--layers", "features.3", "--units", "2",
            "--steps", "2", "--featvis-size", "32", "--no-tuning", "--attribution", "0", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["layers"] == {"features.3": [0, 1]} and data["random_init"] is True and data["pages"] == 1 + 1 + 1 + 2
    assert (out / "index.html").is_file() and not (out / "images.html").exists()
    assert "open" in result.stderr


# -- a real browser ------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browse(page: Path, tmp_path: Path, *, query: str = "", dom: bool = False) -> tuple[str, list[str], Path]:
    """Load a page in headless Chromium: (DOM or '', console messages, screenshot)."""
    browser = _chromium()
    shot = tmp_path / f"{page.stem}-{abs(hash(query))}.png"
    url = page.resolve().as_uri() + query
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"]  # fmt: skip
    done = subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    text = ""
    if dom:
        text = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}).stdout
    return text, console, shot


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian: apt-get install chromium); the browser test needs it")


@needs_chromium
@pytest.mark.parametrize("page", ["index.html", "layers/features.3.html", "units/features.3/1.html", "images.html", "representations.html"])
def test_pages_load_in_a_real_browser_without_console_errors(site: tuple, page: str, tmp_path: Path) -> None:
    from PIL import Image

    root, _, _ = site
    _, console, shot = _browse(root / page, tmp_path)
    assert console == [], console
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (900, 1200)
    assert pixels.std() > 10  # not blank: text, pictures
    assert len(np.unique(pixels)) > 50


@needs_chromium
def test_the_filter_box_filters_in_a_real_browser(site: tuple, tmp_path: Path) -> None:
    root, _, _ = site
    dom, console, _ = _browse(root / "layers" / "features.3.html", tmp_path, query="?q=unit%202", dom=True)
    assert console == []
    assert re.search(r'data-shown="2"', dom), dom[:500]  # the card of unit 2 and its row in the table of all channels
    assert re.search(r'data-shown-cards="1"', dom) and re.search(r'data-shown-rows="1"', dom)  # counted apart
    assert "1 of 4 shown; table: 1 of 16 rows" in dom
    assert re.search(r'<a class="card" href="../units/features.3/2.html"', dom)
    assert re.search(r'<a class="card hidden" href="../units/features.3/1.html"', dom)
    dom, _, _ = _browse(root / "layers" / "features.3.html", tmp_path, dom=True)
    assert re.search(r'data-shown="20"', dom)  # 4 cards, 16 channels


def test_the_site_result_shows_in_a_notebook_and_saves(site: tuple, tmp_path: Path) -> None:
    _, result, _ = site
    assert repr(result).startswith("Site(") and "index.html" in repr(result)
    html = result._repr_html_()
    assert "<img src='data:image/png;base64," in html  # the feature visualizations, one row per layer
    assert result.featvis["features.3"].shape[0] == 4
    saved = json.loads(result.save(tmp_path / "site.json").read_text())
    assert saved["layers"] == {"features.0": [0, 1, 2, 3], "features.3": [0, 1, 2, 3]} and saved["pages"] == 13


def test_every_layer_and_every_unit(net: torch.nn.Module, images: Path, tmp_path: Path) -> None:
    quick = {"settings": SiteSettings(featvis_steps=0, tuning=False, attribution=0, method=None), "progress": False}
    site = build_site(net, images, tmp_path / "site", layers="all", units="all", k=2, **quick)
    assert site.layers == {"features.0": list(range(8)), "features.3": list(range(16))}  # both convolutions, every channel
    assert site.pages == 1 + 1 + 2 + 8 + 16  # model, representations, 2 layers, 8 + 16 units
    for layer, channels in site.layers.items():
        for c in channels:
            assert (tmp_path / "site" / "units" / layer / f"{c}.html").is_file()
    result = CliRunner().invoke(cli, ["microscope", "x.py:Net", "--data", str(images), "-o", str(tmp_path / "s2"), "--units", "many"])
    assert result.exit_code == 2 and "--units must be a number of units, all" in result.stderr


def test_representations_page_cka_and_probes_of_a_labelled_folder(net: torch.nn.Module, tmp_path: Path) -> None:
    from cnnlens.images import save_image
    from cnnlens.representations import similarity

    data = tmp_path / "labelled"
    g = torch.Generator().manual_seed(1)
    for i in range(12):
        img = torch.rand(3, 40, 44, generator=g) * 0.5
        img[i % 2] += 0.5  # class 0 reddish, class 1 greenish
        save_image(img, data / f"c{i % 2}" / f"img{i}.png")
    quick = SiteSettings(featvis_steps=0, tuning=False, attribution=0, method=None)
    site = build_site(net, data, tmp_path / "site", layers=LAYERS, units=1, k=2, settings=quick, progress=False)
    page = (tmp_path / "site" / "representations.html").read_text()
    saved = json.loads((tmp_path / "site" / "representations.json").read_text())
    api = similarity(net, data, layers_a=[*LAYERS, "logits"], debiased=True, batch_size=12, progress=False)
    assert saved["cka"]["cka"] == json.loads(api.to_json())["cka"] and saved["cka"]["layers_a"] == [*LAYERS, "logits"]
    assert saved["probe"]["n_classes"] == 2 and [r["layer"] for r in saved["probe"]["layers"]] == [*LAYERS, "logits"]
    assert 'href="layers/features.0.html"' in page and "What a linear read-out finds" in page
    assert 'href="representations.html"' in (tmp_path / "site" / "index.html").read_text()
    assert site.stages["representations"]["computed"] == 1
    again = build_site(net, data, tmp_path / "site", layers=LAYERS, units=1, k=2, settings=quick, progress=False)
    assert again.stages["representations"]["computed"] == 0  # cached
    none = build_site(net, data, tmp_path / "bare", layers=LAYERS, units=1, k=2, progress=False,
                      settings=SiteSettings(featvis_steps=0, tuning=False, attribution=0, method=None, representations=False))  # fmt: skip
    assert not (tmp_path / "bare" / "representations.html").exists() and "representations" not in none.stages


def test_unit_pages_show_the_circuit_rows_by_expanded_weights(site: tuple, net: torch.nn.Module) -> None:
    from cnnlens.circuits import class_weights, expanded_weights

    root, _, _ = site
    data = json.loads((root / "units" / "features.3" / "1.json").read_text())
    built = data["circuits"]["built_from"]
    sums = expanded_weights(net, "features.0", "features.3").flatten(2).sum(2)[1]
    assert built["layer"] == "features.0" and [c["unit"] for c in built["cards"]] == [f"features.0:{int(i)}" for i in torch.argsort(sums, descending=True, stable=True)[:6]]
    assert built["cards"][0]["weight"] == pytest.approx(float(sums.max()), rel=1e-5)
    shown = [c for c in built["cards"] if int(c["unit"].split(":")[1]) < 4]  # units 0..3 of features.0 have pages
    assert all(c["page"] == f"../../units/features.0/{c['unit'].split(':')[1]}.html" for c in shown)
    assert all(c["page"] is None for c in built["cards"] if c not in shown)
    used = data["circuits"]["used_by"]  # features.3 is the site's last layer: the classes
    weights = class_weights(net, "features.3")[:, 1]
    assert used["layer"] == "logits" and used["cards"][0]["weight"] == pytest.approx(float(weights.max()), rel=1e-5)
    page = (root / "units" / "features.3" / "1.html").read_text()
    assert "Built from features.0" in page and "Used by logits" in page and "expanded weights" in page
    first = json.loads((root / "units" / "features.0" / "2.json").read_text())["circuits"]
    assert first["built_from"] is None and first["used_by"]["layer"] == "features.3"


def test_unit_pages_show_patches_by_relevance_and_the_classes_served(site: tuple, net: torch.nn.Module, images: Path) -> None:
    from cnnlens.units.patches import PatchSettings, top_patches

    root, result, _ = site
    assert "relevance" in result.stages
    data = json.loads((root / "units" / "features.3" / "1.json").read_text())
    rel = data["relevance"]
    api = top_patches(net, "features.3:1", images, k=3, settings=PatchSettings(by="relevance", crops=False), progress=False)
    expected = [p for p in api.patches[1] if p.activation > 0]
    assert [p["image_index"] for p in rel["patches"]] == [p.image_index for p in expected]
    assert [p["activation"] for p in rel["patches"]] == pytest.approx([p.activation for p in expected])
    assert [c["class"] for c in rel["classes"]] == [k for k, _ in api.classes[1]]
    page = (root / "units" / "features.3" / "1.html").read_text()
    if rel["patches"]:
        assert "Top dataset patches by relevance" in page and all((root / "units" / "features.3" / p["crop"]).exists() for p in rel["patches"])
    assert "Classes that use it most" in page


def test_classifier_units_name_their_class_and_weak_grating_responses_get_no_badge(tmp_path: Path) -> None:
    import json

    from cnnlens.microscope import GRATING_BADGE_SHARE, pages

    folder = tmp_path / "imgs"
    for i in range(4):
        cnnlens.save_image(torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(i)), folder / f"{i}.png")
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    settings = cnnlens.microscope.SiteSettings(method=None, featvis_steps=0, tuning={"orientations": 4, "frequencies": 2, "phases": 4},
                                               attribution=0, representations=False, circuits=False, relevance=False)  # fmt: skip
    cnnlens.build_site(net, folder, tmp_path / "site", layers=["features.3", "classifier.1"], units=2, k=1, settings=settings, progress=False)
    site = tmp_path / "site"
    cards = json.loads((site / "layers" / "classifier.1.json").read_text())["units"]
    assert [c["class_name"] for c in cards] == ["tench", "goldfish"]
    assert "· goldfish" in (site / "units" / "classifier.1" / "1.html").read_text()
    assert all(c["class_name"] is None for c in json.loads((site / "layers" / "features.3.json").read_text())["units"])
    for layer in ("features.3", "classifier.1"):
        for card in json.loads((site / "layers" / f"{layer}.json").read_text())["units"]:
            share = card["grating_share"]
            assert (card["tuning"] is not None) == (share is not None and share >= GRATING_BADGE_SHARE), card
            unit = json.loads((site / "units" / layer / f"{card['channel']}.json").read_text())
            assert unit["tuning_badge"] == (card["tuning"] is not None)
    # a unit whose best grating is 2 % of its top activation: its page shows no tuning class
    data = json.loads((site / "units" / "features.3" / "0.json").read_text())
    weak = {**data, "tuning": {**(data["tuning"] or {}), "classification": "simple", "osi": 1.0}, "tuning_badge": False, "grating_share": 0.02}
    html = pages.unit_page(weak)
    assert 'class="tag simple"' not in html and "2 % of its top activation" in html and "below the 25 %" in html
    strong = {**weak, "tuning_badge": True, "grating_share": 0.6}
    assert 'class="tag simple"' in pages.unit_page(strong)
