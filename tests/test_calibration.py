"""The calibrated scale of the meta Sinkhorn estimators' correction (both estimators)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skmetaot import MetaSinkhornCloudTransport, MetaSinkhornTransport
from skmetaot.datasets import make_gaussian_mixture_clouds, make_mnist_pairs
from skmetaot.solvers import gaussian_init


@pytest.fixture(scope="module")
def clouds():
    return (make_gaussian_mixture_clouds(24, 3, n_points=(15, 25), random_state=0),
            make_gaussian_mixture_clouds(6, 3, n_points=(15, 25), random_state=1))


def _cloud_estimator(train, **params):
    options = dict(epsilon=0.1, width=8, n_heads=2, max_iter=30, batch_size=8,
                   baseline="gaussian", device="cpu", random_state=0)
    return MetaSinkhornCloudTransport(**(options | params)).fit(train)


def test_the_chosen_scale_has_the_fewest_median_iterations(clouds):
    train, calibration = clouds
    est = _cloud_estimator(train)
    scales = (0.0, 0.5, 1.0)
    assert est.calibrate(calibration, tol=1e-3, scales=scales) is est
    record = est.calibration_
    assert record["scales"] == list(scales) and record["tol"] == 1e-3
    # Each recorded median is what refining at that scale costs, and the kept one is the least.
    for scale, median in zip(scales, record["median_n_iter"], strict=True):
        est.correction_scale_ = scale
        n_iter = est.refine_state(calibration, tol=1e-3).n_iter.numpy()
        assert np.median(n_iter) == median
    best = min(record["median_n_iter"])
    chosen = max(s for s, m in zip(scales, record["median_n_iter"], strict=True) if m == best)
    est.calibrate(calibration, tol=1e-3, scales=scales)
    assert est.correction_scale_ == chosen


def test_scale_zero_predicts_the_baseline_and_scales_interpolate(clouds):
    train, test = clouds
    est = _cloud_estimator(train)
    whole = est.predict_potentials(test)[0]
    est.correction_scale_ = 0.0
    base = est.predict_potentials(test)[0]
    est.correction_scale_ = 0.25
    quarter = est.predict_potentials(test)[0]
    for k in range(test.n_pairs):
        x, a, y, b = test[k].padded()
        gaussian = gaussian_init(x, a, y, b)[0].double().numpy()
        np.testing.assert_allclose(base[k], gaussian, rtol=1e-5, atol=1e-6)
        # The network moved away from the baseline, and a quarter scale is a quarter of the way.
        assert np.abs(whole[k] - base[k]).max() > 1e-4
        np.testing.assert_allclose(quarter[k], base[k] + 0.25 * (whole[k] - base[k]),
                                   rtol=1e-4, atol=1e-5)


def test_grid_estimator_scale_zero_ignores_the_network():
    train = make_mnist_pairs(32, random_state=0, dtype="float32")
    test = make_mnist_pairs(3, split="test", random_state=1, dtype="float32")
    est = MetaSinkhornTransport(hidden_layer_sizes=(16,), max_iter=20, batch_size=16,
                                device="cpu", random_state=0).fit(train)
    est.correction_scale_ = 0.0
    before = est.predict_potentials(test)[0]
    with torch.no_grad():
        for parameter in est.model_.parameters():
            parameter.add_(1.0)
    np.testing.assert_array_equal(est.predict_potentials(test)[0], before)
    est.correction_scale_ = 1.0
    mass = np.isfinite(before)  # -inf on pixels without mass
    assert np.abs(est.predict_potentials(test)[0][mass] - before[mass]).max() > 1e-3
    # The grid estimator calibrates through the same mixin.
    est.calibrate(test, tol=1e-2, scales=(0.0, 1.0))
    medians = est.calibration_["median_n_iter"]
    assert est.correction_scale_ == (0.0 if medians[0] < medians[1] else 1.0)


def test_fit_resets_and_pickle_keeps_the_calibration(clouds):
    train, calibration = clouds
    est = _cloud_estimator(train).calibrate(calibration, scales=(0.0, 0.3))
    assert est.correction_scale_ in (0.0, 0.3)
    restored = pickle.loads(pickle.dumps(est))
    assert restored.correction_scale_ == est.correction_scale_
    np.testing.assert_array_equal(restored.predict_potentials(calibration)[0][0],
                                  est.predict_potentials(calibration)[0][0])
    est.fit(train)
    assert est.correction_scale_ == 1.0 and not hasattr(est, "calibration_")


def test_an_interrupted_calibration_keeps_the_scale(clouds, monkeypatch):
    train, calibration = clouds
    est = _cloud_estimator(train)
    est.correction_scale_ = 0.7
    calls = []

    def failing(*args, **kwargs):
        calls.append(est.correction_scale_)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return type(est)._refine_state(est, *args, **kwargs)

    monkeypatch.setattr(est, "_refine_state", failing)
    with pytest.raises(KeyboardInterrupt):
        est.calibrate(calibration, scales=(0.0, 0.5, 1.0))
    assert calls == [0.0, 0.5] and est.correction_scale_ == 0.7


def test_calibrate_needs_a_fitted_estimator(clouds):
    with pytest.raises(NotFittedError):
        MetaSinkhornCloudTransport().calibrate(clouds[1])


def test_pairs_in_several_dimensions_calibrate_as_a_list(clouds):
    train, _ = clouds
    est = _cloud_estimator(train)
    groups = [make_gaussian_mixture_clouds(4, dim, n_points=(15, 25), random_state=dim)
              for dim in (2, 5)]
    est.calibrate(groups, tol=1e-2, scales=(0.5, 1.0))
    alone = []
    for scale in (0.5, 1.0):
        est.correction_scale_ = scale
        alone.append(float(np.median(np.concatenate(
            [est.refine_state(group, tol=1e-2).n_iter.numpy() for group in groups]))))
    assert est.calibration_["median_n_iter"] == alone
