"""The tuning tools on the ImageNet-trained squeezenet1_0 of the development data folder, against the
same architecture at random initialisation (the numbers of docs/tuning.md)."""

from __future__ import annotations

import pytest

import cnnlens
from cnnlens.tuning import Gratings, hierarchy, invariance, tuning_curves


def angle_difference(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.slow
def test_trained_first_layer_agrees_with_its_gabor_fits_and_is_more_selective_than_random_init(squeezenet_trained) -> None:
    trained = tuning_curves(squeezenet_trained, "features.0", contrasts=None, progress=False)
    random_init = tuning_curves(cnnlens.create_model("squeezenet1_0", seed=0), "features.0", contrasts=None, progress=False)
    filters = cnnlens.conv_filters(squeezenet_trained)
    pairs = [
        (f.orientation_deg, u.preferred_orientation_deg)
        for f, u in zip(filters.filters, trained.units)
        if f.gabor_r2 is not None and f.gabor_r2 >= 0.8 and f.frequency is not None and f.frequency >= 0.08
    ]
    within = sum(angle_difference(a, b) <= 15.0 for a, b in pairs) / len(pairs)
    assert len(pairs) >= 30 and within >= 0.9
    s, r = trained.summary(), random_init.summary()
    assert s["median_osi"] > 0.4 and r["median_osi"] < 0.25
    assert s["counts"]["complex"] == 0 and s["share_simple"] > 0.8  # a linear layer and a ReLU: simple cells


@pytest.mark.slow
def test_trained_simple_cells_give_way_to_complex_cells_after_the_first_layer(squeezenet_trained) -> None:
    h = hierarchy(squeezenet_trained, ['features.1', 'features.4', 'features.7'], progress=False, gratings=Gratings(orientations=16, frequencies=12, phases=8))
    first, *deeper = h.rows
    assert first.share_simple > 0.8 and first.share_complex == 0.0
    for row in deeper:
        assert row.share_simple < 0.3 and row.share_complex > 0.5
    assert [row.rf_size for row in h.rows] == [7, 27, 59]


@pytest.mark.slow
def test_small_shift_invariance_grows_more_with_depth_when_trained(squeezenet_trained, data) -> None:
    images = data / "imagenet_samples"
    if not images.is_dir():
        pytest.skip(f"{images} is absent")
    inv = invariance(squeezenet_trained, images, ["features.1", "features.12"], transforms={"translation": [2]}, limit=16, progress=False)
    trained = inv.score("translation", sizes=[2])
    random_init = inv.score("translation", baseline=True, sizes=[2])
    gain_trained = trained["features.12"] - trained["features.1"]
    gain_random = random_init["features.12"] - random_init["features.1"]
    assert gain_trained > 0.1 and gain_trained > gain_random
