"""Concepts: NMF as good as scikit-learn's, a sample whose memory does not grow with the folder,
concepts shown with patches, heatmaps and importance, TCAV's statistics on random concepts, the CLI,
the microscope's concept pages -- and, on the trained squeezenet, what the docs state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import cnnlens
from cnnlens.cli import cli
from cnnlens.concepts import ConceptSettings, concept_maps, discover, heatmaps, nmf, project, sample_plan, stimulus_images, tcav
from cnnlens.concepts.discover import concept_importance
from cnnlens.errors import CnnlensError
from cnnlens.testing import model_state

sklearn = pytest.importorskip("sklearn.decomposition")


def _smooth_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Images with structure at several scales (blurred noise), in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.15 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _random_activations(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(rows, 24, generator=g) @ torch.rand(24, cols, generator=g) - 0.5)


# -- NMF --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "cols", "n", "seed"), [(2000, 64, 4, 0), (3000, 96, 8, 1), (1500, 48, 16, 2)])
def test_nmf_reconstructs_at_least_as_well_as_scikit_learn(rows: int, cols: int, n: int, seed: int) -> None:
    x = _random_activations(rows, cols, seed)
    ours = nmf(x, n)
    theirs = sklearn.NMF(n, init="nndsvda", solver="cd", max_iter=1000, random_state=0).fit(x.numpy())
    err = ours.relative_error * float(x.norm())
    assert err <= theirs.reconstruction_err_ * 1.01, (err, theirs.reconstruction_err_)
    assert bool((ours.W >= 0).all()) and bool((ours.H >= 0).all())
    assert torch.allclose(ours.H.norm(dim=1), torch.ones(n), atol=1e-5)  # unit directions, strongest first
    assert bool((ours.W.mean(0)[:-1] >= ours.W.mean(0)[1:]).all())


def test_nmf_error_falls_with_more_concepts() -> None:
    x = _random_activations(2000, 64, 3)
    errors = [nmf(x, n).relative_error for n in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_nmf_refuses_negative_or_too_many() -> None:
    with pytest.raises(CnnlensError, match="non-negative"):
        nmf(torch.randn(10, 5), 2)
    with pytest.raises(CnnlensError, match="1..5"):
        nmf(torch.rand(10, 5), 6)


def test_projection_recovers_exact_concepts_row_by_row() -> None:
    g = torch.Generator().manual_seed(0)
    H = torch.rand(4, 32, generator=g)
    W = torch.rand(50, 4, generator=g) * (torch.rand(50, 4, generator=g) > 0.4)
    got = project(W @ H, H, sweeps=200)
    assert torch.allclose(got, W, atol=1e-4)
    one_by_one = torch.cat([project((W @ H)[i : i + 1], H, sweeps=200) for i in range(5)])
    assert torch.allclose(one_by_one, got[:5], atol=1e-6)


# -- the sample -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_images", [1, 10, 100, 1000, 100_000])
def test_the_sample_is_bounded_whatever_the_number_of_images(n_images: int) -> None:
    plan = sample_plan(n_images, 169, 4096)
    assert len(plan) == n_images
    assert sum(plan) == min(4096, n_images * 169)
    assert max(plan) <= 169
    if n_images * 169 <= 4096:
        assert set(plan) == {169}


def test_discover_finds_concepts_and_leaves_the_model_as_it_was() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    net.train()
    before = model_state(net)
    images = _smooth_images(8)
    found = discover(net, images, layer="features.4", n=3, k=2, seed=0, settings=ConceptSettings(size=64, rows=1000), progress=False)
    after = model_state(net)
    assert before == after and net.training
    assert found.basis.shape == (3, 128) and bool((found.basis >= 0).all())
    assert found.n_rows == 1000 and found.n_images == 8  # 8 images x 196 positions, sampled down to rows
    assert found.patches.channels == [0, 1, 2] and all(len(found.patches.patches[i]) == 2 for i in range(3))
    assert found.importance is not None and len(found.importance) == 3
    # the top patch's value is the concept's activation at that position, recomputed here
    top = found.patches.patches[0][0]
    prep = cnnlens.model_info(net).preprocessing
    x = cnnlens.folders.prepare_image(images[top.image_index], cnnlens.pixelnet.image_preprocessing(net, None, 64))[None]
    with torch.no_grad():
        act = cnnlens.forward_until(net.eval(), prep.normalize(x), ["features.4"])["features.4"]
    net.train()
    maps = concept_maps(act, found.basis)
    assert float(maps[0, 0, top.position[0], top.position[1]]) == pytest.approx(top.activation, rel=1e-4)
    assert float(maps.min()) >= 0
    data = json.loads(found.to_json())
    assert data["n_concepts"] == 3 and len(data["concepts"][0]["direction"]) == 128
    assert "concept 0" in found.to_text() or "      0" in found.to_text()


def test_discover_is_repeatable_and_does_not_depend_on_the_batch_size() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    images = _smooth_images(6, seed=1)
    runs = [
        discover(net, images, layer="features.3", n=2, k=2, seed=5, settings=ConceptSettings(size=64, rows=3000, batch_size=b, importance=False), progress=False)
        for b in (1, 4)
    ]
    assert torch.allclose(runs[0].basis, runs[1].basis, atol=1e-5)
    other = discover(net, images, layer="features.3", n=2, k=2, seed=6, settings=ConceptSettings(size=64, rows=3000, importance=False), progress=False)
    assert not torch.equal(other.basis, runs[0].basis)  # another seed samples other positions


def test_more_concepts_explain_more_of_the_layer() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    images = _smooth_images(4, seed=2)
    errors = [
        discover(net, images, layer="features.4", n=n, k=1, seed=0, settings=ConceptSettings(size=64, importance=False), progress=False).relative_error
        for n in (2, 4, 8)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_importance_is_gradient_times_concept() -> None:
    """Summed over the concepts, gradient x concept is the gradient times the reconstructed activation."""
    torch.manual_seed(0)
    act = torch.rand(2, 16, 5, 5)
    grad = torch.randn(2, 16, 5, 5)
    basis = torch.nn.functional.normalize(torch.rand(3, 16), dim=1)
    scores = concept_importance(act, grad, basis)
    u = concept_maps(act, basis)
    rebuilt = torch.einsum("bnhw,nc->bchw", u, basis)
    assert torch.allclose(scores.sum(1), (rebuilt * grad).sum((1, 2, 3)), rtol=1e-4, atol=1e-4)


def test_heatmaps_upsample_the_concept_maps() -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    found = discover(net, _smooth_images(4), layer="features.4", n=2, k=1, seed=0, settings=ConceptSettings(size=64, importance=False), progress=False)
    maps = heatmaps(net, found, _smooth_images(1, seed=9)[0])
    assert torch.equal(found.heatmaps(net, _smooth_images(1, seed=9)[0]).maps, maps.maps)
    assert maps.maps.shape == (2, 64, 64) and maps.grid.shape[0] == 2
    assert float(maps.maps.min()) >= 0
    assert float(maps.maps.max()) <= float(maps.grid.max()) * (1 + 1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer": "features.99"}, "features.99"),
        ({"layer": "classifier.3"}, "classifier.3"),
        ({"layer": "features.4", "n": 500}, "1..128"),
        ({"layer": "features.4", "method": "pca"}, "nmf"),
    ],
)
def test_bad_arguments_are_refused_before_any_image_is_read(kwargs: dict, match: str) -> None:
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    with pytest.raises(CnnlensError, match=match):
        discover(net, "/no/such/folder", progress=False, **kwargs)


# -- TCAV -------------------------------------------------------------------------------------------


def test_striped_stimuli_are_black_and_white_stripes() -> None:
    s = stimulus_images("striped", 5, 32, seed=0)
    assert s.shape == (5, 3, 32, 32) and set(s.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(CnnlensError, match="striped"):
        stimulus_images("stripy", 5, 32)


def test_random_concepts_are_not_significant() -> None:
    """20 trials of a random concept (images from the random distribution) against the random sets:
    TCAV scores near 0.5 and no significance in at least 90 % of them."""
    net = cnnlens.create_model("lenet5", seed=0)
    pool = _smooth_images(10 + 20 * 10 + 16, size=32, seed=3)
    significant, scores = 0, []
    for trial in range(20):
        g = torch.Generator().manual_seed(trial)
        order = torch.randperm(len(pool), generator=g)
        concept, randoms, images = pool[order[:10]], pool[order[10:210]], pool[order[210:226]]
        r = tcav(net, concept, randoms, layer="4", target=trial % 10, images=images, seed=trial, progress=False)
        significant += r.significant
        scores.append(r.score)
    assert significant <= 2, significant
    assert abs(sum(scores) / len(scores) - 0.5) < 0.15, scores


def test_tcav_refuses_too_few_random_images() -> None:
    net = cnnlens.create_model("lenet5", seed=0)
    with pytest.raises(CnnlensError, match="at least 40"):
        tcav(net, _smooth_images(5, 32), _smooth_images(15, 32), layer="4", target=0, progress=False)
    with pytest.raises(CnnlensError, match="n_random"):
        tcav(net, _smooth_images(5, 32), _smooth_images(15, 32), layer="4", target=0, n_random=5, progress=False)


# -- CLI --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concept-images")
    for i, img in enumerate(_smooth_images(40, size=48, seed=4)):
        cnnlens.save_image(img, root / f"img{i:02d}.png")
    return root


def test_cli_concepts_writes_the_figure_and_the_numbers(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    args = ["concepts", "squeezenet1_0", "-w", "none", "--data", str(folder), "-l", "features.4", "-k", "3", "--top", "2", "--size", "48",
            "--steps", "2", "-o", str(out)]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 10_000
    assert "3 concepts of features.4" in r.output
    r = CliRunner().invoke(cli, [*args[:-2], "--no-visualize", "--json"])
    data = json.loads(r.stdout)
    assert data["n_concepts"] == 3 and len(data["concepts"][2]["patches"]) == 2
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "exists" in again.output


def test_cli_tcav_with_a_built_in_concept(folder: Path) -> None:
    r = CliRunner().invoke(cli, ["tcav", "lenet5", "-w", "none", "--concept", "striped", "--random", str(folder), "-l", "4", "-t", "3",
                                 "--size", "32", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["concept"] == "striped" and len(data["scores"]) == 10 and 0 <= data["p_value"] <= 1
    assert data["n_per_random"] == 2  # 40 images make 20 sets of 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["tcav", "lenet5", "-w", "none", "--concept", "zigzag", "-l", "4", "-t", "3"], "built-in concept"),
        (["tcav", "lenet5", "-w", "none", "--concept", "striped", "-l", "4", "-t", "top"], "not top"),
        (["concepts", "squeezenet1_0", "-w", "none", "-l", "features.99"], "features.99"),
        (["concepts", "squeezenet1_0", "-w", "none", "-l", "features.4", "-k", "0"], "0"),
    ],
)
def test_cli_refusals_are_one_line(folder: Path, args: list[str], match: str) -> None:
    if args[0] == "tcav":
        args = [*args, "--random", str(folder)]
    else:
        args = [*args, "--data", str(folder), "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output


def test_microscope_concept_pages(folder: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    net = cnnlens.create_model("squeezenet1_0", seed=0)
    settings = cnnlens.microscope.SiteSettings(method=None, featvis_steps=2, featvis_size=32, tuning=False, attribution=0, representations=False,
                                               circuits=False, relevance=False, concepts=2)  # fmt: skip
    cnnlens.build_site(net, folder, site, layers=["features.4"], units=2, k=2, settings=settings, progress=False)
    page = (site / "concepts" / "features.4.html").read_text()
    data = json.loads((site / "concepts" / "features.4.json").read_text())
    assert len(data["concepts"]) == 2 and all(len(c["patches"]) == 2 for c in data["concepts"])
    for c in data["concepts"]:
        assert (site / "concepts" / c["featvis"]).exists()
        assert all((site / "concepts" / p["crop"]).exists() for p in c["patches"])
        assert any(t["page"] for t in c["channels"]) or all(t["channel"] >= 2 for t in c["channels"])
    assert "concept 1" in page and "../concepts/features.4.html" in (site / "layers" / "features.4.html").read_text()


# -- the trained squeezenet (real data) -------------------------------------------------------------


@pytest.mark.slow
def test_concepts_of_the_trained_squeezenet_as_the_docs_state(squeezenet_trained: torch.nn.Module, data: Path) -> None:
    """docs/concepts.md: features.9 on the 1,000 samples, 8 concepts, seed 0 -- the sample, the
    error, and concept 0 as dog faces (its top patches come from dog classes)."""
    found = discover(squeezenet_trained, data / "imagenet_samples", layer="features.9", n=8, k=10, seed=0, progress=False,
                     settings=ConceptSettings(importance=False))  # fmt: skip
    assert found.n_rows == 32768 and found.n_images == 1000
    assert found.relative_error == pytest.approx(0.751, abs=0.005)
    import csv

    with open(data / "imagenet_samples" / "labels.csv", newline="") as fh:
        label = {row["filename"]: int(row["class_index"]) for row in csv.DictReader(fh)}
    dogs = [p.image for p in found.patches.patches[0] if 151 <= label[Path(p.image).name] <= 268]  # ImageNet's dog classes
    assert len(dogs) >= 7, [Path(p.image).name for p in found.patches.patches[0]]


@pytest.mark.slow
def test_striped_raises_zebra_at_an_early_layer_of_the_trained_squeezenet(squeezenet_trained: torch.nn.Module, data: Path) -> None:
    """docs/concepts.md: "striped" gratings against 10 random concepts from the 1,000 samples, the
    zebra logit's directional derivatives on those images, features.4: significant, raising."""
    r = tcav(squeezenet_trained, "striped", data / "imagenet_samples", layer="features.4", target=340, seed=0, progress=False)
    assert r.significant and r.direction == "raises", r.to_text()
    assert r.score == pytest.approx(0.727, abs=0.01) and r.null_score == pytest.approx(0.489, abs=0.01)
