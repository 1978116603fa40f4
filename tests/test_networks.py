import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skmetaot.nn import ICNN, MLP, MLPPotential, ResidualAmortizer, get_activation
from skmetaot.nn.potentials import potential_gradient


def _chord_gap(f, x, y):
    """(f(x) + f(y)) / 2 - f((x + y) / 2): non-negative for a convex f."""
    return (f(x) + f(y)) / 2 - f((x + y) / 2)


def _hessian_quadratic_forms(f, x, v):
    """v^T H_f(x) v for each row, by double back-propagation."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    (hv,) = torch.autograd.grad((grad * v).sum(), x)
    return (hv * v).sum(-1)


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(1, 6), activation=st.sampled_from(["elu", "celu", "softplus",
                                                          "leaky_relu"]),
       quadratic=st.sampled_from(["scalar", "full", "none"]), seed=st.integers(0, 2**16))
def test_icnn_is_convex_at_initialisation(dim, activation, quadratic, seed):
    gen = torch.Generator().manual_seed(seed)
    icnn = ICNN(dim, (16, 16), activation=activation, quadratic=quadratic,
                generator=gen).double()
    x, y = torch.randn(256, dim, generator=gen).double(), 3 * torch.randn(
        256, dim, generator=gen).double()
    with torch.no_grad():
        assert _chord_gap(icnn, x, y).min() >= -1e-10
    v = torch.randn(256, dim, generator=gen).double()
    assert _hessian_quadratic_forms(icnn, x, v).min() >= -1e-10


def test_icnn_stays_convex_after_training_towards_a_concave_target():
    # Fitting -|x|^2 pushes hard against convexity; the reparametrisation must hold.
    torch.manual_seed(0)
    icnn = ICNN(2, (32, 32)).double()
    opt = torch.optim.Adam(icnn.parameters(), lr=1e-2)
    for _ in range(200):
        x = torch.randn(128, 2).double()
        loss = ((icnn(x) + (x * x).sum(-1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = 2 * torch.randn(1000, 2).double(), 2 * torch.randn(1000, 2).double()
    with torch.no_grad():
        assert _chord_gap(icnn, x, y).min() >= -1e-10
    assert _hessian_quadratic_forms(icnn, x, torch.randn_like(x)).min() >= -1e-10


def test_mlp_potential_can_be_non_convex():
    # The unconstrained control: fitting a wave makes an MLP potential visibly non-convex,
    # so the convexity checks above can fail.
    torch.manual_seed(0)
    mlp = MLPPotential(2, (32, 32)).double()
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(300):
        x = torch.randn(128, 2).double()
        loss = ((mlp(x) - 3 * torch.cos(2 * x[:, 0])) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = 2 * torch.randn(1000, 2).double(), 2 * torch.randn(1000, 2).double()
    with torch.no_grad():
        assert _chord_gap(mlp, x, y).min() < -1e-3


def test_icnn_functional_batch_matches_each_network():
    icnn = ICNN(3, (8, 4)).double()
    params = torch.stack([icnn.init_params(torch.Generator().manual_seed(s)) for s in range(4)])
    params = params.double()
    x = torch.randn(4, 5, 3).double()
    batched = icnn.functional(params, x)
    single = torch.stack([icnn.functional(params[k], x[k]) for k in range(4)])
    torch.testing.assert_close(batched, single)
    assert params.shape[1] == icnn.n_params == sum(math.prod(s) for _, s in icnn.layout)


def test_icnn_flat_parameters_round_trip_and_errors():
    icnn = ICNN(2, (4,))
    blocks = icnn.unflatten(icnn.params)
    assert [tuple(b.shape) for b in blocks.values()] == [s for _, s in icnn.layout]
    with pytest.raises(ValueError, match="parameters per network"):
        icnn.functional(torch.zeros(icnn.n_params + 1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(B, n, d\)"):
        icnn.functional(torch.zeros(2, icnn.n_params), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="convex"):
        ICNN(2, (4,), activation="tanh")
    with pytest.raises(ValueError, match="quadratic"):
        ICNN(2, (4,), quadratic="cubic")
    with pytest.raises(ValueError, match="hidden"):
        ICNN(2, ())


def test_potential_gradient_matches_closed_form_and_leaves_parameters_alone():
    icnn = ICNN(2, (8,), quadratic="full", output_activation=False)
    with torch.no_grad():
        icnn.unflatten(icnn.params.data)["wz1"].fill_(-1e4)  # only the quadratic term is left
        icnn.unflatten(icnn.params.data)["ax1"].zero_()
    x = torch.randn(10, 2)
    quad = icnn.unflatten(icnn.params.detach())["quad"]
    torch.testing.assert_close(potential_gradient(icnn, x), x @ (quad.T @ quad).T)
    assert icnn.params.grad is None
    with torch.no_grad():
        assert potential_gradient(icnn, x).shape == (10, 2)


def test_residual_amortizer_starts_at_identity_and_networks_pickle():
    amortizer = ResidualAmortizer(3, (8,))
    y = torch.randn(5, 3)
    assert torch.equal(amortizer(y), y)
    for net in (amortizer, ICNN(3, (8,)), MLPPotential(3, (8,)), MLP(3, (4,), 2)):
        clone = pickle.loads(pickle.dumps(net))
        inputs = torch.randn(4, 3)
        torch.testing.assert_close(clone(inputs), net(inputs))


def test_activation_registry():
    assert get_activation("elu") is not None
    with pytest.raises(ValueError, match="activation"):
        get_activation("swish")
    with pytest.raises(ValueError, match="convex"):
        get_activation("gelu", convex=True)
    np.testing.assert_allclose(get_activation("leaky_relu")(torch.tensor([-1.0])).numpy(), [-0.2])


# -- encoders and the hypernetwork --------------------------------------------------------------
def test_set_encoder_is_permutation_invariant_and_weight_aware():
    from skmetaot.nn import SetEncoder

    torch.manual_seed(0)
    encoder = SetEncoder(3, (16, 16), n_features=8).double()
    points = torch.rand(2, 30, 3, dtype=torch.float64)
    shuffled = points[:, torch.randperm(30)]
    torch.testing.assert_close(encoder(points), encoder(shuffled))
    # a point listed twice weighs as much as weight 2/n on one copy
    doubled = torch.cat([points, points[:, :1]], dim=1)
    weights = torch.full((2, 30), 1.0 / 31, dtype=torch.float64)
    weights[:, 0] = 2.0 / 31
    torch.testing.assert_close(encoder(doubled), encoder(points, weights))
    # zero-weight padding changes nothing
    padded = torch.cat([points, torch.rand(2, 5, 3, dtype=torch.float64)], dim=1)
    pad_weights = torch.cat([torch.full((2, 30), 1 / 30, dtype=torch.float64),
                             torch.zeros(2, 5, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(encoder(padded, pad_weights), encoder(points))


def test_moment_features_are_the_mean_and_covariance():
    from skmetaot.nn import moment_features

    points = torch.randn(1, 5000, 2, dtype=torch.float64) * torch.tensor([1.0, 2.0]) + 3.0
    features = moment_features(points)[0]
    torch.testing.assert_close(features[:2], points[0].mean(0))
    cov = torch.cov(points[0].T, correction=0)
    torch.testing.assert_close(features[2:], cov[[0, 0, 1], [0, 1, 1]])


def test_image_encoder_takes_any_size_and_checks_channels():
    from skmetaot.nn import ImageEncoder

    encoder = ImageEncoder(n_features=16, width=4)
    assert encoder(torch.rand(2, 3, 17, 40)).shape == (2, 16)
    with pytest.raises(ValueError, match="expects images"):
        encoder(torch.rand(2, 1, 8, 8))


def test_hypernetwork_starts_at_its_base_vector():
    from skmetaot.nn import PairHypernetwork, SetEncoder

    base = torch.randn(12)
    net = PairHypernetwork(SetEncoder(2, (8,), n_features=4), base, (16,))
    out = net((torch.rand(3, 20, 2),), (torch.rand(3, 25, 2),))
    torch.testing.assert_close(out, base.expand(3, -1))
    assert net.base.requires_grad
