"""MetaSinkhornTransport on small problems (scikit-learn's 8 x 8 digits)."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from ot.utils import OTResult
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from skmetaot import MetaSinkhornTransport, pairs_from_images, sinkhorn
from skmetaot.amortize import TrainingDiverged
from skmetaot.datasets import make_sphere_supply_demand
from skmetaot.metrics import marginal_error

SMALL = dict(hidden_layer_sizes=(128, 128), max_iter=300, batch_size=32, learning_rate=1e-3,
             epsilon=1e-2, device="cpu", random_state=0)


def _digit_pairs(n_pairs, seed, images=None):
    images = load_digits().images if images is None else images
    rng = np.random.RandomState(seed)
    first, second = rng.randint(len(images), size=n_pairs), rng.randint(len(images), size=n_pairs)
    return pairs_from_images(images[first], images[second])


@pytest.fixture(scope="module")
def digits_split():
    images = load_digits().images
    return _digit_pairs(2000, 0, images[:1400]), _digit_pairs(40, 1, images[1400:])


@pytest.fixture(scope="module")
def fitted(digits_split):
    train, _ = digits_split
    return MetaSinkhornTransport(**SMALL).fit(train)


def test_trained_model_beats_zeros_on_held_out_pairs(fitted, digits_split):
    _, test = digits_split
    meta = [r.log["niter"] for r in fitted.refine(test, tol=1e-3, init="meta")]
    zeros = [r.log["niter"] for r in fitted.refine(test, tol=1e-3, init="zeros")]
    # Over random_state 0-3 the ratio is 0.75-0.86 for this short schedule.
    assert np.median(meta) < 0.9 * np.median(zeros)
    assert all(r.log["err"] < 1e-3 for r in fitted.refine(test[:5], tol=1e-3))


def test_prediction_is_closer_to_the_solution_than_the_cold_start(fitted, digits_split):
    # The immediate L1 error of (f, g(f)) is dominated by directions Sinkhorn fixes in a few
    # iterations; what the prediction gets right shows after those.
    _, test = digits_split
    meta = [r.log["err"] for r in fitted.refine(test, tol=1e-12, max_iter=5, init="meta")]
    zeros = [r.log["err"] for r in fitted.refine(test, tol=1e-12, max_iter=5, init="zeros")]
    assert np.median(meta) < 0.75 * np.median(zeros)


def test_predicted_potentials_shapes_and_exact_b_marginal(fitted, digits_split):
    _, test = digits_split
    f, g = fitted.predict_potentials(test)
    assert isinstance(f, np.ndarray) and f.shape == (40, 64) and g.shape == (40, 64)
    a, b = test.a.numpy(), test.b.numpy()
    assert np.all(np.isneginf(f[a == 0])) and np.all(np.isfinite(f[a > 0]))
    assert not np.isnan(f).any() and not np.isnan(g).any()
    plans = fitted.predict_plan(test)
    assert plans.shape == (40, 64, 64) and (plans >= 0).all()
    np.testing.assert_allclose(plans.sum(1), b, atol=1e-5)


def test_torch_in_torch_out(fitted, digits_split):
    _, test = digits_split
    images = torch.as_tensor(np.stack([test.a.reshape(-1, 8, 8).numpy(),
                                       test.b.reshape(-1, 8, 8).numpy()], axis=1))
    f, g = fitted.predict_potentials(images)
    assert isinstance(f, torch.Tensor) and f.shape == (40, 64)


def test_refine_returns_pot_results_for_each_init(fitted, digits_split):
    _, test = digits_split
    for init in ("meta", "zeros", "gaussian"):
        results = fitted.refine(test[:3], tol=1e-4, init=init)
        assert len(results) == 3 and all(isinstance(r, OTResult) for r in results)
        for r, a, b in zip(results, test.a[:3].numpy(), test.b[:3].numpy(), strict=True):
            assert r.log["err"] < 1e-4
            assert marginal_error(r.plan.astype(np.float64), a, b) < 1.05e-4  # float32 sums
    with pytest.raises(ValueError, match="init"):
        fitted.refine(test[:1], init="magic")


def test_transform_is_the_barycentric_projection(fitted, digits_split):
    _, test = digits_split
    mapped = fitted.transform(test[:2])
    assert mapped.shape == (2, 64, 2)
    plans = fitted.predict_plan(test[:2])
    a = test.a[:2].numpy()
    support = test.y.numpy()
    for k in range(2):
        keep = a[k] > 0
        bary = plans[k][keep] @ support / plans[k][keep].sum(1, keepdims=True)
        np.testing.assert_allclose(mapped[k][keep], bary, atol=1e-4)


def test_score_improves_with_training(fitted, digits_split):
    train, test = digits_split
    untrained = MetaSinkhornTransport(**{**SMALL, "max_iter": 1}).fit(train)
    assert fitted.score(test) > untrained.score(test)


def test_pickle_and_joblib_round_trips_give_identical_predictions(fitted, digits_split, tmp_path):
    _, test = digits_split
    f, g = fitted.predict_potentials(test)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict_potentials(test)[0], f)
    joblib.dump(fitted, tmp_path / "model.joblib")
    reloaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(reloaded.predict_potentials(test)[1], g)


def test_training_continues_identically_after_a_pickle_round_trip(digits_split):
    train, test = digits_split
    est = MetaSinkhornTransport(**{**SMALL, "max_iter": 10}).fit(train)
    copy = pickle.loads(pickle.dumps(est))
    est.partial_fit(train, n_steps=5)
    copy.partial_fit(train, n_steps=5)
    np.testing.assert_array_equal(copy.predict_potentials(test)[0],
                                  est.predict_potentials(test)[0])


def test_model_pickled_with_an_unavailable_device_loads_on_cpu(fitted, digits_split):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    _, test = digits_split
    copy = pickle.loads(pickle.dumps(fitted))
    copy.device = "cuda"  # as if it had been fitted on a GPU machine
    with pytest.warns(RuntimeWarning, match="loaded on the CPU"):
        loaded = pickle.loads(pickle.dumps(copy))
    assert next(loaded.model_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_potentials(test)[0],
                                  fitted.predict_potentials(test)[0])


def test_random_state_makes_training_reproducible(digits_split):
    train, test = digits_split
    params = {**SMALL, "max_iter": 20}
    first = MetaSinkhornTransport(**params).fit(train).predict_potentials(test)[0]
    second = MetaSinkhornTransport(**params).fit(train).predict_potentials(test)[0]
    np.testing.assert_array_equal(first, second)


def test_partial_fit_continues_training(digits_split):
    train, _ = digits_split
    est = MetaSinkhornTransport(**SMALL)
    est.partial_fit(train[:64])
    assert est.n_iter_ == 2  # one pass over 64 pairs at batch 32
    est.partial_fit(train[:64], n_steps=5)
    assert est.n_iter_ == 7 and len(est.history_["loss"]) == 7


def test_history_and_validation(digits_split):
    train, _ = digits_split
    est = MetaSinkhornTransport(**{**SMALL, "max_iter": 40, "validation_fraction": 0.2,
                                   "verbose": 1}).fit(train[:200])
    assert len(est.history_["loss"]) == 40 and est.n_iter_ == 40
    assert len(est.history_["val_loss"]) >= 2 and np.isfinite(est.history_["val_loss"]).all()


def test_unrolled_loss_trains(digits_split):
    train, test = digits_split
    est = MetaSinkhornTransport(**{**SMALL, "max_iter": 30, "unroll_steps": 3}).fit(train)
    assert np.isfinite(est.history_["loss"]).all()
    g = est.predict_potentials(test)[1]
    assert np.isfinite(g[test.b.numpy() > 0]).all() and not np.isnan(g).any()


def test_divergence_stops_with_the_last_good_parameters(digits_split, monkeypatch):
    train, test = digits_split
    est = MetaSinkhornTransport(**{**SMALL, "max_iter": 30}).fit(train[:100])
    good = [p.detach().clone() for p in est.model_.parameters()]
    original = est._forward

    def poisoned(geometry, a, b):
        return original(geometry, a, b) * float("nan")

    monkeypatch.setattr(est, "_forward", poisoned)
    with pytest.raises(TrainingDiverged, match="last good"):
        est.partial_fit(train[:100], n_steps=5)
    monkeypatch.setattr(est, "_forward", original)
    for before, after in zip(good, est.model_.parameters(), strict=True):
        torch.testing.assert_close(before, after.detach())
    g = est.predict_potentials(test)[1]
    assert np.isfinite(g[test.b.numpy() > 0]).all() and not np.isnan(g).any()


def test_not_fitted_and_bad_input(digits_split):
    train, test = digits_split
    est = MetaSinkhornTransport(**SMALL)
    with pytest.raises(NotFittedError):
        est.predict_potentials(test)
    rng = np.random.default_rng(0)
    clouds = [(rng.random((5, 2)), rng.random((6, 2)))]
    with pytest.raises(ValueError, match="shared"):
        est.fit(clouds)
    small = MetaSinkhornTransport(**{**SMALL, "max_iter": 2}).fit(train)
    with pytest.raises(ValueError, match="atoms"):
        small.predict_potentials(_digit_pairs(2, 0, np.ones((3, 5, 5))))
    shifted = pairs_from_images(np.ones((2, 8, 8)), np.ones((2, 8, 8)))
    shifted.x = shifted.x + 1.0
    with pytest.raises(ValueError, match="supports differ"):
        small.predict_potentials(shifted)


@pytest.mark.parametrize("param, value", [
    ("epsilon", 0.0), ("epsilon", float("nan")), ("learning_rate", -1.0), ("batch_size", 0),
    ("max_iter", 1.5), ("tol", 0), ("hidden_layer_sizes", (0,)), ("validation_fraction", 1.0),
    ("cost", "manhattan"), ("unroll_steps", -1), ("dtype", "int8"), ("device", "tpu9"),
])
def test_bad_hyperparameters_raise(digits_split, param, value):
    train, _ = digits_split
    with pytest.raises(ValueError, match=param if param not in ("cost",) else "cost"):
        MetaSinkhornTransport(**{**SMALL, param: value}).fit(train[:10])


def test_clone_keeps_parameters():
    est = MetaSinkhornTransport(**SMALL)
    assert clone(est).get_params() == est.get_params()


def test_sphere_problem_trains_and_beats_zeros():
    train = make_sphere_supply_demand(256, n_supply=20, n_demand=300, random_state=0)
    test = make_sphere_supply_demand(10, n_supply=20, n_demand=300, random_state=1)
    assert np.allclose(np.linalg.norm(train.y.numpy(), axis=1), 1.0)
    assert ((train.a.numpy() == 0).mean() > 0.3)  # Bernoulli(0.5) supply mask
    est = MetaSinkhornTransport(**{**SMALL, "epsilon": 1e-2, "cost": "spherical",
                                   "max_iter": 200}).fit(train)
    meta = np.median([r.log["niter"] for r in est.refine(test, tol=1e-3)])
    zeros = np.median([r.log["niter"] for r in est.refine(test, tol=1e-3, init="zeros")])
    assert meta < zeros


def test_supports_built_in_another_precision_are_the_same_supports():
    # A grid built in float64 and one built in float32 differ in the last bit; a model fitted on
    # one must accept pairs on the other, and still reject a support moved by a pixel's width.
    images = load_digits().images
    fitted = MetaSinkhornTransport(**{**SMALL, "max_iter": 2}).fit(
        pairs_from_images(images[:8].astype(np.float32), images[8:16].astype(np.float32)))
    doubles = pairs_from_images(images[16:20], images[20:24])
    assert fitted.predict_potentials(doubles)[0].shape == (4, 64)
    doubles.x = doubles.x + 1.0 / 8
    with pytest.raises(ValueError, match="supports differ"):
        fitted.predict_potentials(doubles)


def test_checked_supports_are_remembered_by_identity_and_version_only():
    # A support that passed the check is not compared again, unless it changed in place; the
    # cache is neither pickled nor kept across a new fit on other supports.
    images = load_digits().images
    fitted = MetaSinkhornTransport(**{**SMALL, "max_iter": 2}).fit(
        pairs_from_images(images[:8].astype(np.float32), images[8:16].astype(np.float32)))
    doubles = pairs_from_images(images[16:20], images[20:24])
    first = fitted.predict_potentials(doubles)[0]
    np.testing.assert_array_equal(fitted.predict_potentials(doubles)[0], first)
    assert "_cache_supports" not in pickle.loads(pickle.dumps(fitted)).__dict__
    doubles.x.add_(1.0 / 8)  # in place: the same tensor object, a new version
    with pytest.raises(ValueError, match="supports differ"):
        fitted.predict_potentials(doubles)
    doubles.x.sub_(1.0 / 8)
    assert fitted.predict_potentials(doubles)[0].shape == (4, 64)
    fitted.fit(pairs_from_images(images[:8, ::2, ::2], images[8:16, ::2, ::2]))  # 4 x 4 grids
    with pytest.raises(ValueError, match="atoms"):
        fitted.predict_potentials(doubles)
    coarse = pairs_from_images(images[16:20, ::2, ::2], images[20:24, ::2, ::2])
    assert fitted.predict_potentials(coarse)[0].shape == (4, 16)


@pytest.mark.parametrize("init", ["zeros", "meta"])
def test_benchmark_chained_tolerances_count_the_direct_iterations(fitted, digits_split, init):
    # B2 measures 1e-2 and 1e-3 along one run per pair; it must count what a direct run counts.
    from skmetaot.evaluation import time_to_tolerances

    _, test = digits_split
    pairs = test[:6]
    legs = time_to_tolerances(fitted, pairs, (1e-4, 1e-2), init, chain=True)
    for (_, state), tol in zip(legs, (1e-2, 1e-4), strict=True):
        direct = fitted.refine_state(pairs, tol, 100000, init)
        assert state.n_iter.tolist() == direct.n_iter.tolist()
        assert state.n_iter.tolist() == [r.log["niter"] for r in fitted.refine(pairs, tol,
                                                                               100000, init)]
        assert bool(state.converged.all())
    assert (legs[1][1].n_iter > legs[0][1].n_iter).all()


class _TwoLayerNet(torch.nn.Sequential):
    """A user's network for ``model=``: (n_features, n_source) -> module, last layer zero."""

    def __init__(self, n_features, n_source):
        super().__init__(torch.nn.Linear(n_features, 32), torch.nn.Tanh(),
                         torch.nn.Linear(32, n_source))
        torch.nn.init.zeros_(self[-1].weight)
        torch.nn.init.zeros_(self[-1].bias)


def test_model_parameter_trains_the_users_network(digits_split):
    train, test = digits_split
    params = {**SMALL, "max_iter": 30}
    est = MetaSinkhornTransport(**params, model=_TwoLayerNet).fit(train[:256])
    assert isinstance(est.model_, _TwoLayerNet)
    assert est.model_[0].in_features == 2 * 64 and est.model_[-1].out_features == 64
    f, g = est.predict_potentials(test)
    assert f.shape == (40, 64) and np.isfinite(g[np.asarray(test.b) > 0]).all()
    assert bool(torch.any(est.model_[-1].weight != 0))  # it trained
    assert pickle.loads(pickle.dumps(est)).predict_potentials(test)[0].shape == f.shape
    with pytest.raises(ValueError, match="model='mlp'"):
        MetaSinkhornTransport(**params, model="mlp").fit(train[:8])
    with pytest.raises(TypeError, match="model must be None, 'conv' or a callable"):
        MetaSinkhornTransport(**params, model=3).fit(train[:8])
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        MetaSinkhornTransport(**params, model=lambda n, m: "net").fit(train[:8])


def test_a_model_saved_before_a_parameter_existed_loads_with_its_default(fitted):
    state = fitted.__getstate__()
    del state["model"], state["target_sample_size"]  # as pickled by an older version
    loaded = object.__new__(type(fitted))
    loaded.__setstate__(state)
    assert loaded.get_params()["model"] is None
    assert loaded.get_params()["target_sample_size"] is None


def test_refine_starts_from_the_same_prediction_on_checked_or_fitted_supports(fitted):
    # refine checks the supports once and hands the solver pairs holding the fitted ones, whose
    # batches the estimator then predicts without checking again: the start must be the one
    # sinkhorn(pairs, init=est) computes through the full check, on supports equal only up to
    # rounding (a copy of the grid, not the fitted tensor).
    copy = pairs_from_images(load_digits().images[1400:1403], load_digits().images[1403:1406])
    copy.x = copy.x.clone() * (1 + 1e-16)
    copy.y = copy.x
    assert copy.x is not fitted.support_x_
    checked = fitted._validate_pairs(copy, fitting=False)
    assert checked.x is fitted.support_x_ and checked.y is fitted.support_y_
    assert copy.x is not fitted.support_x_  # the user's pairs are not changed
    state = fitted.refine_state(copy, tol=1e-4)
    warm = fitted.refine_state(copy, tol=1e-4, max_iter=1)
    direct = sinkhorn(copy, epsilon=fitted.epsilon, tol=1e-4, init=fitted, max_iter=1, warn=False)
    assert torch.allclose(warm.f, torch.as_tensor(direct.f, dtype=warm.f.dtype), atol=1e-6)
    assert state.n_iter.tolist() == np.asarray(
        sinkhorn(copy, epsilon=fitted.epsilon, tol=1e-4, init=fitted).n_iter).tolist()
