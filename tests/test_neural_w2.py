import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmetaot import NeuralW2Transport
from skmetaot.amortize import TrainingDiverged
from skmetaot.datasets import make_gaussian_pair
from skmetaot.estimators._potential import TransportPotential

SMALL = dict(hidden_layer_sizes=(32, 32), batch_size=128, pretrain_iter=100, random_state=0)


@pytest.fixture(scope="module")
def gaussian():
    pair = make_gaussian_pair(2, random_state=0, n_test=1000)
    return pair, pair.as_pair(4000, random_state=1)


@pytest.fixture(scope="module")
def fitted(gaussian):
    pair, data = gaussian
    return NeuralW2Transport(max_iter=300, **SMALL).fit(data)


def test_regression_lbfgs_learns_a_gaussian_map(gaussian, fitted):
    pair, _ = gaussian
    identity = pair.uvp(pair.x_test)
    learned = pair.uvp(fitted.transform(pair.x_test))
    assert learned < 0.1 * identity
    assert fitted.n_iter_ == 300 and fitted.n_features_in_ == 2
    history = fitted.history_
    assert len(history["loss"]) == len(history["dual"]) == 300
    assert np.mean(history["conjugate_iterations"]) > 0
    assert history["pretrain_loss"][-1] < history["pretrain_loss"][0]


def test_inverse_transform_inverts_transform(gaussian, fitted):
    pair, _ = gaussian
    x = pair.x_test[:200]
    back = fitted.inverse_transform(fitted.transform(x))
    np.testing.assert_allclose(back, x, atol=5e-3)


def test_potential_object_and_conjugate(fitted):
    potential = fitted.predict_potentials()
    assert isinstance(potential, TransportPotential)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)).astype(np.float32), rng.normal(size=(50, 2)).astype(
        np.float32)
    # Fenchel-Young: f(x) + f*(y) >= <x, y>, with equality at x = grad f*(y).
    assert np.all(potential(x) + potential.conjugate(y) >= (x * y).sum(-1) - 1e-4)
    x_star = potential.inverse_transform(y)
    np.testing.assert_allclose(potential(x_star) + potential.conjugate(y),
                               (x_star * y).sum(-1), atol=1e-4)
    np.testing.assert_allclose(potential.transform(x), fitted.transform(x))
    assert potential.parameters and all(isinstance(v, np.ndarray)
                                        for v in potential.parameters.values())


def test_torch_in_torch_out_and_score(gaussian, fitted):
    pair, data = gaussian
    out = fitted.transform(torch.as_tensor(pair.x_test[:10]))
    assert isinstance(out, torch.Tensor) and out.shape == (10, 2)
    held_out = pair.as_pair(2000, random_state=7)
    score = fitted.score(held_out)
    # E|x|^2 + E|y|^2 + 2 V is a lower bound of W2^2 and nearly tight after training.
    x, y = held_out
    bound = (x ** 2).sum(-1).mean() + (y ** 2).sum(-1).mean() + 2 * score
    assert bound <= pair.w2_squared * 1.05 + 0.05
    assert bound >= pair.w2_squared * 0.8


@pytest.mark.parametrize("potential,amortization,conjugate", [
    ("icnn", "cycle", None),            # W2GN
    ("icnn", "objective", None),        # Makkuva et al.
    ("mlp", "objective", "adam"),
    ("mlp", "regression", "lbfgs"),
])
def test_every_setting_trains(gaussian, potential, amortization, conjugate):
    pair, data = gaussian
    est = NeuralW2Transport(potential=potential, amortization=amortization,
                            conjugate=conjugate, max_iter=150, **SMALL).fit(data)
    assert pair.uvp(est.transform(pair.x_test)) < 0.5 * pair.uvp(pair.x_test)


def test_refine_continues_training_and_validation_records_uvp(gaussian):
    pair, data = gaussian
    est = NeuralW2Transport(max_iter=60, **SMALL)
    est.fit(data, validation=(pair.x_test, pair.Tx_test), validate_every=20)
    assert len(est.history_["val_uvp"]) == 3
    est.refine(max_iter=40)
    assert est.n_iter_ == 100 and len(est.history_["loss"]) == 100


def test_random_state_reproduces_and_pickle_round_trips(gaussian):
    pair, data = gaussian
    a = NeuralW2Transport(max_iter=20, **SMALL).fit(data)
    b = NeuralW2Transport(max_iter=20, **SMALL).fit(data)
    np.testing.assert_array_equal(a.transform(pair.x_test), b.transform(pair.x_test))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.transform(pair.x_test), a.transform(pair.x_test))
    with pytest.raises(ValueError, match="pass the pairs"):
        c.refine(max_iter=2)  # pickles leave the training samples out
    c.refine(data, max_iter=2)  # the optimiser state survives the round trip
    assert len(pickle.dumps(a)) < len(pickle.dumps(data))
    assert clone(a).get_params() == a.get_params()


def test_an_exploding_loss_is_recovered_by_a_lower_rate(gaussian):
    pair, data = gaussian
    est = NeuralW2Transport(potential="mlp", amortization="objective", conjugate=None,
                            max_iter=300, hidden_layer_sizes=(32, 32), batch_size=128,
                            pretrain_iter=0, learning_rate=0.5, random_state=0).fit(data)
    recovered = est.history_["recoveries"]
    assert 1 <= len(recovered) <= 3  # the skipped steps, each one dividing the rate by 10
    assert est.n_iter_ == 300 and len(est.history_["loss"]) == 300 - len(recovered)
    assert np.isfinite(est.history_["loss"]).all()
    assert np.isfinite(est.transform(pair.x_test)).all()


def test_divergence_stops_with_the_last_good_parameters(gaussian):
    pair, data = gaussian
    params = dict(potential="mlp", amortization="objective", conjugate=None, max_iter=300,
                  hidden_layer_sizes=(32, 32), batch_size=128, pretrain_iter=0, random_state=0)
    est = NeuralW2Transport(learning_rate=1e3, **params)
    with pytest.raises(TrainingDiverged, match="last good parameters.*3 recoveries"):
        est.fit(data)
    assert len(est.history_["recoveries"]) == 3
    # No state after the first update was ever good: the estimator is back at its start.
    start = NeuralW2Transport(learning_rate=1e-30, **{**params, "max_iter": 1}).fit(data)
    np.testing.assert_allclose(est.transform(pair.x_test), start.transform(pair.x_test),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("learning_rate", [10.0, 1e3])
def test_a_far_too_large_rate_ends_in_recovery_or_divergence_with_sane_maps(learning_rate):
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(512, 2)), 1 + 0.5 * rng.normal(size=(512, 2))
    est = NeuralW2Transport(learning_rate=learning_rate, max_iter=50, batch_size=64,
                            hidden_layer_sizes=(16, 16), pretrain_iter=50, random_state=0)
    try:
        est.fit((xs, xt))
    except TrainingDiverged:
        assert len(est.history_["recoveries"]) == 3
    else:
        assert 1 <= len(est.history_["recoveries"]) <= 3
    for points in (est.transform(xs), est.inverse_transform(xt)):
        # Finite, and no wild state: N(0, 1) inputs stay at the scale of the two measures.
        assert np.isfinite(points).all() and np.abs(points).max() < 10
    assert np.isfinite(est.score((xs, xt)))


def test_a_failing_conjugate_solve_is_a_recovered_step(gaussian, monkeypatch):
    import skmetaot.estimators._neural_w2_training as module
    from skmetaot.solvers.conjugate import NonFiniteConjugateError

    pair, data = gaussian
    original, calls = module.w2_dual_step, []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise NonFiniteConjugateError("the potential is not finite at x_init")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "w2_dual_step", failing_once)
    est = NeuralW2Transport(max_iter=20, **SMALL).fit(data)
    assert est.history_["recoveries"] == [3] and est.n_iter_ == 20
    assert len(est.history_["loss"]) == 19
    assert np.isfinite(est.transform(pair.x_test)).all()


def test_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    with pytest.raises(NotFittedError):
        NeuralW2Transport().transform(x)
    with pytest.raises(ValueError, match="one pair"):
        NeuralW2Transport(max_iter=1).fit([(x, x), (x, x)])
    with pytest.raises(ValueError, match="needs a conjugate solver"):
        NeuralW2Transport(conjugate=None).fit((x, x))
    for bad in (dict(potential="resnet"), dict(conjugate="newton"),
                dict(amortization="none"), dict(max_iter=0), dict(learning_rate=-1.0),
                dict(hidden_layer_sizes=(0,))):
        with pytest.raises(ValueError):
            NeuralW2Transport(**bad).fit((x, x))
    est = NeuralW2Transport(max_iter=2, pretrain_iter=0, batch_size=8,
                            hidden_layer_sizes=(4,)).fit((x, x))
    with pytest.raises(ValueError, match="X has 3 features, but NeuralW2Transport is expecting 2"):
        est.transform(rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        est.transform(np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="validation"):
        NeuralW2Transport(max_iter=2, pretrain_iter=0, batch_size=8).fit(
            (x, x), validation=x)


# -- ot.da's form ---------------------------------------------------------------------------
def test_ot_da_forms_fit_the_same_map_as_a_pair(gaussian):
    _, (xs, xt) = gaussian
    xs, xt = xs[:512], xt[:512]
    labels = (xs[:, 0] > 0).astype(int)
    params = dict(max_iter=20, **SMALL)
    reference = NeuralW2Transport(**params).fit((xs, xt)).transform(xs[:50])
    for fitted in (NeuralW2Transport(**params).fit(xs, labels, xt),  # ot.da's positional order
                   NeuralW2Transport(**params).fit(Xs=xs, ys=labels, Xt=xt),
                   NeuralW2Transport(**params).fit((xs, xt), labels)):
        # Labels are checked, not used: the map is the pair's.
        np.testing.assert_array_equal(fitted.transform(xs[:50]), reference)


def test_labelled_targets_are_said_to_be_unused(gaussian):
    import warnings

    _, (xs, xt) = gaussian
    xs, xt = xs[:256], xt[:256]
    est = NeuralW2Transport(max_iter=2, **SMALL)
    with pytest.warns(UserWarning, match=r"yt labels 256 target samples.*does not use labels"):
        est.fit(xs, np.zeros(256), xt, np.ones(256))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unlabelled targets (-1 or NaN), as ot.da writes them
        est.fit(xs, np.zeros(256), xt, -np.ones(256))
        est.fit(xs, np.zeros(256), xt, np.full(256, np.nan))


def test_refitting_in_another_form_forgets_the_previous_dimension(gaussian):
    _, (xs, xt) = gaussian
    est = NeuralW2Transport(max_iter=2, **SMALL).fit((xs[:64], xt[:64]))
    rng = np.random.default_rng(0)
    est.fit(rng.normal(size=(64, 3)), None, rng.normal(size=(64, 3)))
    assert est.n_features_in_ == 3 and est.transform(rng.normal(size=(5, 3))).shape == (5, 3)
