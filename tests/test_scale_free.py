"""Scale-free W2 estimators: a common shift and scale of both measures shifts and scales the map.

W2 maps commute with a similarity ``x -> c x + t`` applied to both measures, and the estimators
standardise by one before training, so a fit at any scale is the fit at unit scale: the map,
its inverse, the potentials (values times ``c ** 2``) and the scores carry over exactly, up to
rounding. The exact map used is ``T(x) = x / 2 + 1`` between N(0, I) and N(1, I / 4).
"""

import numpy as np
import pytest

from skmetaot import MetaICNNTransport, NeuralW2Transport
from skmetaot.datasets import make_gaussian_pair

SCALES = (1e-6, 1e-3, 1e3, 1e6)
W2 = dict(hidden_layer_sizes=(16, 16), batch_size=64, max_iter=40, pretrain_iter=20,
          random_state=0)
META = dict(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,), batch_size=2,
            n_samples=64, max_iter=10, pretrain_iter=20, refine_max_iter=5, random_state=0)


def _similarity(scale):
    """``x -> c x + t`` with a shift that is large at the scale of the data."""
    shift = scale * np.array([3.0, -2.0])
    return lambda points: scale * points + shift


@pytest.fixture(scope="module")
def affine():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(512, 2)), 1 + 0.5 * rng.normal(size=(512, 2))
    test = rng.normal(size=(200, 2))
    return source, target, test, NeuralW2Transport(**W2).fit((source, target))


def _map_error(mapped, exact):
    """Relative L2 error of a map, in units of the spread of the exact images."""
    return float(np.linalg.norm(mapped - exact) / np.linalg.norm(exact - exact.mean(0)))


@pytest.mark.parametrize("scale", SCALES)
def test_neural_w2_map_is_equivariant_to_a_common_shift_and_scale(affine, scale):
    source, target, test, unit = affine
    move = _similarity(scale)
    est = NeuralW2Transport(**W2).fit((move(source), move(target)))
    np.testing.assert_allclose(est.scale_, scale * unit.scale_, rtol=1e-6)
    np.testing.assert_allclose(est.shift_, move(unit.shift_), rtol=1e-6)
    mapped = est.transform(move(test))
    # In units of the scale, the same map as at unit scale (the same fit, up to rounding).
    np.testing.assert_allclose(mapped / scale, move(unit.transform(test)) / scale, atol=1e-4)
    np.testing.assert_allclose(est.inverse_transform(move(test)) / scale,
                               move(unit.inverse_transform(test)) / scale, atol=1e-4)
    exact = move(0.5 * test + 1)
    assert _map_error(mapped, exact) <= 1.5 * _map_error(unit.transform(test), 0.5 * test + 1)


@pytest.mark.parametrize("scale", SCALES)
def test_neural_w2_values_and_scores_are_in_the_users_units(affine, scale):
    source, target, test, unit = affine
    move = _similarity(scale)
    xs, xt = move(source), move(target)
    est = NeuralW2Transport(**W2).fit((xs, xt))
    # The W2 bound E|x|^2 + E|y|^2 + 2 V is invariant to the shift and scales by c^2.
    bound = (xs ** 2).sum(1).mean() + (xt ** 2).sum(1).mean() + 2 * est.score((xs, xt))
    unit_bound = ((source ** 2).sum(1).mean() + (target ** 2).sum(1).mean()
                  + 2 * unit.score((source, target)))
    np.testing.assert_allclose(bound / scale ** 2, unit_bound, rtol=1e-3)
    # Fenchel-Young holds with equality at the conjugate's argmin, in the user's units.
    potential = est.predict_potentials()
    y = move(0.5 * test + 1)
    x_star = potential.inverse_transform(y).astype(float)
    np.testing.assert_allclose(potential(x_star) + potential.conjugate(y),
                               (x_star * y).sum(1), rtol=1e-5)
    # The training duals (on mini-batches) are in the user's units too: near the final score.
    score = est.score((xs, xt))
    np.testing.assert_allclose(np.mean(est.history_["dual"][-10:]), score, rtol=0.1)


@pytest.fixture(scope="module")
def meta():
    pairs = [make_gaussian_pair(2, random_state=k, dtype="float64").as_pair(
        256, random_state=100 + k) for k in range(5)]
    return pairs, MetaICNNTransport(**META).fit(pairs[:4])


@pytest.mark.parametrize("scale", SCALES)
def test_meta_icnn_prediction_is_equivariant_per_pair(meta, scale):
    pairs, est = meta
    move = _similarity(scale)
    held_out = pairs[4]
    moved = (move(held_out[0]), move(held_out[1]))
    # Same standardised problem, same parameters; the map and the score follow the similarity.
    np.testing.assert_allclose(est.predict_params([moved]), est.predict_params([held_out]),
                               rtol=1e-4, atol=1e-5)
    mapped, = est.transform([moved])
    unit, = est.transform([held_out])
    np.testing.assert_allclose(mapped / scale, move(unit) / scale, atol=1e-4)
    unit_pot, = est.predict_potentials([held_out])
    pot, = est.predict_potentials([moved])
    np.testing.assert_allclose(pot.scale, scale * unit_pot.scale, rtol=1e-6)
    back = pot.inverse_transform(mapped[:50].astype(float))
    np.testing.assert_allclose(back / scale, moved[0][:50] / scale, atol=1e-2)
    x, y = held_out
    bound = (x ** 2).sum(1).mean() + (y ** 2).sum(1).mean() + 2 * est.score([held_out])
    x, y = moved
    moved_bound = (x ** 2).sum(1).mean() + (y ** 2).sum(1).mean() + 2 * est.score([moved])
    np.testing.assert_allclose(moved_bound / scale ** 2, bound, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_meta_icnn_training_is_equivariant(meta, scale):
    pairs, _ = meta
    est = MetaICNNTransport(**META).fit(pairs[:4])  # fresh: refine draws from its generator
    move = _similarity(scale)
    moved = [(move(x), move(y)) for x, y in pairs]
    scaled = MetaICNNTransport(**META).fit(moved[:4])
    np.testing.assert_allclose(scaled.predict_params(moved[4:]), est.predict_params(pairs[4:]),
                               rtol=1e-3, atol=1e-4)
    refined, = scaled.refine(moved[4:], max_iter=3)
    unit, = est.refine(pairs[4:], max_iter=3)
    np.testing.assert_allclose(refined.transform(moved[4][0]) / scale,
                               move(unit.transform(pairs[4][0])) / scale, atol=1e-4)
