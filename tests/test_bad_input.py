"""Bad-input battery (issue 8): every public entry point against malformed data.

One table, one row per case, with ids ``entrypoint-problem``. Each row is a call and its
expected outcome:

* :class:`Raises`: a ``ValueError`` or ``TypeError`` whose message names the problem, raised by
  skmetaot's own validation (the last traceback frame is in the package), never from deep inside
  torch. ``NeuralW2Transport`` with a ``target`` is a scikit-learn transformer on plain arrays:
  there the array checks are scikit-learn's ``check_array`` (``source="sklearn"``), whose
  messages scikit-learn's own estimator checks expect.
* :class:`Returns`: a documented behaviour (integer input converted to float, repeated points,
  a huge or tiny epsilon, a single pair read as a collection of one, ...). Every number of the
  output is checked to be finite (or -inf exactly where documented), so no case gives NaN
  silently.

Tensors on another device are exercised with ``device="meta"`` tensors (shapes without data),
which exist on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.preprocessing import StandardScaler

import skmetaot
from skmetaot import (
    GaussianInitializer,
    GivenPotentials,
    HistogramPairs,
    Initializer,
    MetaICNNTransport,
    MetaSinkhornTransport,
    NeuralW2Transport,
    TransportPotential,
    as_pairs,
    conjugate,
    sinkhorn,
)

PACKAGE = Path(skmetaot.__file__).resolve().parent
SKLEARN_VALIDATION = Path(sklearn.__file__).resolve().parent / "utils" / "validation.py"

_RNG = np.random.default_rng(8)
#: Six pairs of 4 x 4 grey images without zero pixels, shape (6, 2, 4, 4).
IMAGES = _RNG.random((6, 2, 4, 4)) + 0.1
#: Three pairs of point clouds in R^2 of different sizes.
CLOUDS = [(_RNG.normal(size=(20, 2)), 1 + 0.5 * _RNG.normal(size=(25, 2))) for _ in range(3)]
XS, XT = CLOUDS[0]
#: Two pairs of colour images (H, W, C) = (6, 5, 3), values in [0, 1].
COLOUR = [(_RNG.random((6, 5, 3)), _RNG.random((6, 5, 3))) for _ in range(2)]
# One histogram problem: weights on 5 and 6 points, their supports and costs.
A, B = np.full(5, 0.2), np.full(6, 1 / 6)
X5, Y6 = _RNG.random((5, 2)), _RNG.random((6, 2))
C = ((X5[:, None] - Y6[None]) ** 2).sum(-1)
GRID = np.stack(np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4), indexing="ij"),
                -1).reshape(-1, 2)


def _with(array: Any, index: Any, value: float) -> np.ndarray:
    """A float copy of ``array`` with ``array[index] = value``."""
    out = np.array(array, dtype=float, copy=True)
    out[index] = value
    return out


def _meta(*shape: int) -> torch.Tensor:
    """A tensor on the meta device: a shape and a dtype, no data."""
    return torch.empty(shape, device="meta")


def _half_square(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x * x).sum(-1)


# -- outcomes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raises:
    """The call raises ``exc`` (exactly) with a message matching ``match``.

    ``source`` is where the last traceback frame must be: ``"skmetaot"`` (the package's own
    validation) or ``"sklearn"`` (scikit-learn's ``check_array``, for the transformer API).
    """

    exc: type[Exception]
    match: str
    source: str = "skmetaot"


@dataclass(frozen=True)
class Returns:
    """Documented behaviour: the call succeeds and its output is finite.

    ``shape`` is the shape of the first array of the output; ``check`` is an extra assertion
    on the output; ``finite=False`` leaves finiteness to ``check`` (for documented -inf);
    ``warns`` is a warning the call must issue (non-convergence, detached gradients), with a
    message matching ``warns_match``.
    """

    shape: tuple[int, ...] | None = None
    check: Callable[[Any], None] | None = None
    finite: bool = True
    warns: type[Warning] | None = None
    warns_match: str = ""


def _arrays(out: Any) -> list[np.ndarray]:
    """Every array in an output, as numpy (results, lists, potentials, OT results)."""
    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, (np.ndarray, float, int, np.floating)):
        return [np.asarray(out)]
    if isinstance(out, (list, tuple)):
        return [array for item in out for array in _arrays(item)]
    if isinstance(out, TransportPotential):
        probe = np.linspace(-1, 1, 2 * out.dim).reshape(2, out.dim)
        return _arrays([out(probe), out.transform(probe)])
    if isinstance(out, skmetaot.MeasurePairs):
        return _arrays([out.x, out.y, out.a, out.b])
    if isinstance(out, skmetaot.SinkhornResult):
        return _arrays([out.f, out.g, out.errors, out.plan()])
    if isinstance(out, skmetaot.ConjugateResult):
        return _arrays([out.x, out.value, out.grad_norm])
    if hasattr(out, "potentials") and hasattr(out, "plan"):  # POT's OTResult
        return _arrays([*out.potentials, out.plan])
    if isinstance(out, BaseException) or out is None:
        raise AssertionError(f"unexpected output {out!r}")
    raise AssertionError(f"no rule to read the numbers of a {type(out).__name__}")


# -- fitted estimators, once per module -------------------------------------------------------
SMALL_SINKHORN = dict(hidden_layer_sizes=(16,), max_iter=2, batch_size=4, refine_max_iter=50,
                      random_state=0, device="cpu")
SMALL_ICNN = dict(icnn_hidden_sizes=(8,), encoder_features=8, hidden_layer_sizes=(16,),
                  batch_size=2, n_samples=16, max_iter=2, pretrain_iter=2, refine_max_iter=2,
                  random_state=0, device="cpu")
SMALL_W2 = dict(max_iter=2, pretrain_iter=2, batch_size=16, hidden_layer_sizes=(8, 8),
                conjugate_max_iter=10, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def fitted() -> SimpleNamespace:
    """Small fitted estimators shared by the cases (a few seconds in all)."""
    nw = NeuralW2Transport(**SMALL_W2).fit((XS, XT))
    return SimpleNamespace(
        ms=MetaSinkhornTransport(**SMALL_SINKHORN).fit(IMAGES),
        ms_tiny=MetaSinkhornTransport(epsilon=1e-8, **SMALL_SINKHORN).fit(IMAGES),
        ms_huge=MetaSinkhornTransport(epsilon=1e8, **SMALL_SINKHORN).fit(IMAGES),
        mi=MetaICNNTransport(**SMALL_ICNN).fit(CLOUDS),
        mi_img=MetaICNNTransport(**SMALL_ICNN).fit(COLOUR),
        nw=nw,
        ng=NeuralW2Transport(target="normal", **SMALL_W2).fit(XS),
        pot=nw.predict_potentials(),
    )


def _sinkhorn_fit(**params: Any) -> MetaSinkhornTransport:
    return MetaSinkhornTransport(**(SMALL_SINKHORN | params))


def _icnn_fit(**params: Any) -> MetaICNNTransport:
    return MetaICNNTransport(**(SMALL_ICNN | params))


def _w2_fit(**params: Any) -> NeuralW2Transport:
    return NeuralW2Transport(**(SMALL_W2 | params))


# -- documented behaviours that need more than "finite" -------------------------------------
def _sinkhorn_tiny_epsilon(result: Any) -> None:
    # Tiny epsilon: the log-domain iterations stay finite; they may run out of iterations.
    assert result.n_iter.max() >= 1 and result.epsilon == 1e-8


def _minus_inf_on_zero_pixels(out: Any) -> None:
    f, g = out
    a = np.asarray(_ZERO_PIXELS[:, 0].reshape(2, -1))
    assert not np.isnan(f).any() and not np.isnan(g).any()
    assert np.isneginf(f[a == 0]).all() and np.isfinite(f[a > 0]).all()
    assert np.isfinite(g).all()


_ZERO_PIXELS = _with(IMAGES[:2], (slice(None), 0, 0, slice(None)), 0.0)


def _minus_inf_where(values: Any, where: np.ndarray) -> None:
    values = np.asarray(values)
    assert not np.isnan(values).any()
    assert np.isneginf(values[where]).all() and np.isfinite(values[~where]).all()


def _detached(values: Any) -> None:
    assert isinstance(values, torch.Tensor) and not values.requires_grad


def _float64_pairs(pairs: Any) -> None:
    assert pairs.dtype == torch.float64


def _one_pair(out: Any) -> None:
    assert len(out) == 1


def _grad_of_half_square(result: Any) -> None:
    np.testing.assert_allclose(result.x, np.full((3, 2), 1.0), atol=1e-3)


def _empty_result(result: Any) -> None:
    assert result.x.shape == (0, 2) and result.value.shape == (0,)


# -- the table --------------------------------------------------------------------------------
P = pytest.param
NaN, INF = np.nan, np.inf
NAN_IMAGES = _with(IMAGES[:2], (0, 0, 1, 1), NaN)
BIG_IMAGES = _RNG.random((2, 2, 5, 5)) + 0.1

AS_PAIRS = [
    P(lambda e: as_pairs([(XS, _with(XT, (0, 0), NaN))]),
      Raises(ValueError, r"pair 0: target points contains NaN"), id="as_pairs-nan-points"),
    P(lambda e: as_pairs([((XS, _with(np.ones(20), 3, INF)), XT)]),
      Raises(ValueError, r"pair 0: source weights contains NaN or inf"), id="as_pairs-inf-weights"),
    P(lambda e: as_pairs([((XS, _with(np.ones(20), 0, -1)), XT)]),
      Raises(ValueError, r"pair 0: source weights.*negative"), id="as_pairs-negative-weights"),
    P(lambda e: as_pairs([(XS, (XT, np.zeros(25)))]),
      Raises(ValueError, r"pair 0: target weights.*zero total mass"), id="as_pairs-zero-mass"),
    P(lambda e: as_pairs([(XS, XT), (np.zeros((0, 2)), XT)]),
      Raises(ValueError, r"pair 1: source points is an empty measure"),
      id="as_pairs-empty-measure"),
    P(lambda e: as_pairs([]), Raises(ValueError, r"no pairs"), id="as_pairs-empty-collection"),
    P(lambda e: as_pairs([(XS, _RNG.random((4, 3)))]),
      Raises(ValueError, r"pair 0: dimension mismatch.*d=2.*d=3"), id="as_pairs-dim-within-pair"),
    P(lambda e: as_pairs([(XS, XT), (_RNG.random((4, 3)), _RNG.random((4, 3)))]),
      Raises(ValueError, r"pair 1: dimension mismatch.*pair 0"), id="as_pairs-dim-between-pairs"),
    P(lambda e: as_pairs([(np.arange(10).reshape(5, 2), np.ones((6, 2), dtype=np.int32))]),
      Returns(check=_float64_pairs), id="as_pairs-int-to-float64"),
    P(lambda e: as_pairs([(XS.astype(object), XT)]),
      Raises(TypeError, r"pair 0: source points.*object"), id="as_pairs-object"),
    P(lambda e: as_pairs([(XS, XT.astype(complex))]),
      Raises(TypeError, r"pair 0: target points must be real.*complex"), id="as_pairs-complex"),
    P(lambda e: as_pairs([(XS.astype(str), XT)]),
      Raises(TypeError, r"pair 0: source points.*dtype <U"), id="as_pairs-strings"),
    P(lambda e: as_pairs([(_meta(5, 2), torch.ones(6, 2))]),
      Raises(ValueError, r"pair 0: source points.*'meta' device.*no data"),
      id="as_pairs-meta-tensor"),
    P(lambda e: as_pairs(_meta(2, 2, 4, 4)),
      Raises(ValueError, r"images_a.*'meta' device"), id="as_pairs-meta-images"),
    P(lambda e: as_pairs(np.ones(5)),
      Raises(ValueError, r"image pairs of shape \(N, 2, H, W\), got shape \(5,\)"),
      id="as_pairs-1d"),
    P(lambda e: as_pairs((XS, XT), allow_single=False),
      Raises(TypeError, r"single pair"), id="as_pairs-single-pair-not-allowed"),
    P(lambda e: as_pairs([(XS, XT), ([[0.0, 0.0], [1.0]], XT)]),
      Raises(TypeError, r"pair 1: expected \(Xs, Xt\)"), id="as_pairs-ragged"),
    P(lambda e: as_pairs([(np.zeros((5, 2)), np.zeros((6, 2)))]),
      Returns(), id="as_pairs-duplicate-points"),
]

class _WrongWidth(Initializer):
    """A user's initializer whose f has one column too many."""

    def init_f(self, batch: Any) -> torch.Tensor:
        return torch.zeros(batch.a.shape[0], batch.a.shape[1] + 1)


SINKHORN = [
    P(lambda e: sinkhorn(_with(A, 0, NaN), B, C),
      Raises(ValueError, r"pair 0: source weights contain NaN or inf"), id="sinkhorn-nan-weights"),
    P(lambda e: sinkhorn(A, _with(B, 2, INF), C),
      Raises(ValueError, r"pair 0: target weights contain NaN or inf"), id="sinkhorn-inf-weights"),
    P(lambda e: sinkhorn(A, B, _with(C, (1, 1), NaN)),
      Raises(ValueError, r"C \(cost matrix\) contains NaN"), id="sinkhorn-nan-cost"),
    P(lambda e: sinkhorn(A, B, x=_with(X5, (0, 0), INF), y=Y6),
      Raises(ValueError, r"x contains NaN or infinite"), id="sinkhorn-inf-support"),
    P(lambda e: sinkhorn(_with(A, 0, -0.5), B, C),
      Raises(ValueError, r"pair 0: source weights are negative"), id="sinkhorn-negative-weights"),
    P(lambda e: sinkhorn(A, np.zeros(6), C),
      Raises(ValueError, r"pair 0: target weights have zero total mass"), id="sinkhorn-zero-mass"),
    P(lambda e: sinkhorn(np.zeros(0), B, np.zeros((0, 6))),
      Raises(ValueError, r"source measures are empty"), id="sinkhorn-empty-measure"),
    P(lambda e: sinkhorn(A, B, x=X5, y=_RNG.random((6, 3))),
      Raises(ValueError, r"dimension mismatch: x has d=2, y has d=3"), id="sinkhorn-dim-x-vs-y"),
    P(lambda e: sinkhorn(A, B, C.T),
      Raises(ValueError, r"C has shape \(6, 5\); expected \(5, 6\)"), id="sinkhorn-cost-shape"),
    P(lambda e: sinkhorn(A, B[None], C),
      Returns(shape=(1, 5)), id="sinkhorn-one-b-row-broadcast"),
    P(lambda e: sinkhorn(np.ones((3, 5)), B, C), Returns(shape=(3, 5)),
      id="sinkhorn-one-b-over-a-batch"),
    P(lambda e: sinkhorn(A, np.ones((3, 6)), C), Returns(shape=(3, 5)),
      id="sinkhorn-one-a-over-b-batch"),
    P(lambda e: sinkhorn(np.ones((2, 5)), B, np.stack([C] * 3)),
      Raises(ValueError, r"C has shape \(3, 5, 6\); expected \(5, 6\) or \(2, 5, 6\)"),
      id="sinkhorn-broadcast-b-cost-count"),
    P(lambda e: sinkhorn(A, B, np.stack([C] * 3), x=_RNG.random((2, 5, 2)),
                         y=_RNG.random((2, 6, 2))),
      Raises(ValueError, r"x holds supports for 2 problems but C holds costs for 3"),
      id="sinkhorn-broadcast-cost-vs-supports"),
    P(lambda e: sinkhorn(A, B, x=_RNG.random((2, 5, 2)), y=_RNG.random((3, 6, 2))),
      Raises(ValueError, r"x holds supports for 2 problems but y for 3"),
      id="sinkhorn-supports-x-vs-y-count"),
    P(lambda e: sinkhorn(A, np.ones((3, 6, 1)), C),
      Raises(ValueError, r"b must have shape \(m,\) or \(N, m\)"), id="sinkhorn-3d-b"),
    P(lambda e: sinkhorn(np.ones((2, 5)), np.ones((3, 6)), C),
      Raises(ValueError, r"a has shape \(2, 5\) but b has \(3, 6\)"), id="sinkhorn-a-b-count"),
    P(lambda e: sinkhorn(np.ones((2, 2, 5)), np.ones((2, 2, 6)), C),
      Raises(ValueError, r"a must have shape \(n,\) or \(N, n\)"), id="sinkhorn-3d-weights"),
    P(lambda e: sinkhorn(np.ones((2, 5)), np.ones((2, 6)), x=_RNG.random((2, 5, 2)), y=Y6),
      Raises(ValueError, r"x has shape \(2, 5, 2\) but y has \(6, 2\)"),
      id="sinkhorn-per-problem-x-shared-y"),
    P(lambda e: sinkhorn(np.ones((3, 5)), np.ones((3, 6)), x=_RNG.random((2, 5, 2)),
                         y=_RNG.random((2, 6, 2))),
      Raises(ValueError, r"x holds supports for 2 problems but a holds weights for 3"),
      id="sinkhorn-supports-vs-weights-count"),
    P(lambda e: sinkhorn(A, B, x=np.ones(5), y=np.ones(6)),
      Raises(ValueError, r"x \(source support\) must be 2-D"), id="sinkhorn-1d-support"),
    P(lambda e: sinkhorn(A, C=C),
      Raises(ValueError, r"C given without b"), id="sinkhorn-cost-without-b"),
    P(lambda e: sinkhorn(np.ones(5, dtype=int), np.ones(6, dtype=np.int32), x=np.arange(10)
                         .reshape(5, 2), y=np.arange(12).reshape(6, 2), epsilon=1.0),
      Returns(shape=(5,)), id="sinkhorn-int-to-float64"),
    P(lambda e: sinkhorn(A.astype(object), B, C),
      Raises(TypeError, r"a must be an array of numbers, got an object array"),
      id="sinkhorn-object"),
    P(lambda e: sinkhorn(A, B, C.astype(complex)),
      Raises(TypeError, r"C \(cost matrix\) must be real, got complex"), id="sinkhorn-complex"),
    P(lambda e: sinkhorn(A.astype(str), B, C),
      Raises(TypeError, r"a must be an array of numbers, got dtype <U"), id="sinkhorn-strings"),
    P(lambda e: sinkhorn([[0.5, 0.5], [1.0]], [[0.5, 0.5], [0.5, 0.5]], C[:2, :2]),
      Raises(ValueError, r"a is ragged"), id="sinkhorn-ragged"),
    P(lambda e: sinkhorn(_meta(5), torch.ones(6), torch.ones(5, 6)),
      Raises(ValueError, r"a is a tensor on the 'meta' device"), id="sinkhorn-meta-weights"),
    P(lambda e: sinkhorn(torch.ones(5), torch.ones(6), _meta(5, 6)),
      Raises(ValueError, r"C \(cost matrix\) is a tensor on the 'meta' device"),
      id="sinkhorn-meta-cost"),
    P(lambda e: sinkhorn(torch.ones(5), torch.ones(6), x=torch.ones(5, 2), y=_meta(6, 2)),
      Raises(ValueError, r"y is a tensor on the 'meta' device"), id="sinkhorn-meta-support"),
    P(lambda e: sinkhorn(A, B, C, device="meta"),
      Raises(ValueError, r"device='meta' holds no data"), id="sinkhorn-meta-device-argument"),
    P(lambda e: sinkhorn(A, B, C, epsilon=1e-8, max_iter=50),
      Returns(shape=(5,), check=_sinkhorn_tiny_epsilon), id="sinkhorn-tiny-epsilon"),
    P(lambda e: sinkhorn(*(v.astype(np.float32) for v in (A, B, C)), epsilon=1e-8, max_iter=50),
      Returns(shape=(5,)), id="sinkhorn-tiny-epsilon-float32"),
    P(lambda e: sinkhorn(A, B, C, epsilon=1e8),
      Returns(shape=(5,)), id="sinkhorn-huge-epsilon"),
    P(lambda e: sinkhorn(IMAGES[:2, 0].reshape(2, -1), IMAGES[:2, 1].reshape(2, -1), x=GRID,
                         y=GRID, epsilon=1e-8, max_iter=50),
      Returns(shape=(2, 16)), id="sinkhorn-tiny-epsilon-grid"),
    P(lambda e: sinkhorn(A, B, x=np.zeros((5, 2)), y=np.zeros((6, 2))),
      Returns(shape=(5,)), id="sinkhorn-duplicate-points"),
    # the pair form sinkhorn(pairs)
    P(lambda e: sinkhorn([(_with(X5, (0, 0), NaN), Y6)]),
      Raises(ValueError, r"pair 0: source points contains NaN"), id="sinkhorn(pairs)-nan-points"),
    P(lambda e: sinkhorn([((X5, _with(A, 1, -1)), (Y6, B))]),
      Raises(ValueError, r"pair 0: source weights.*negative"), id="sinkhorn(pairs)-negative"),
    P(lambda e: sinkhorn([]), Raises(ValueError, r"no pairs"), id="sinkhorn(pairs)-empty"),
    P(lambda e: sinkhorn([(X5, Y6), (_RNG.random((5, 3)), _RNG.random((6, 3)))]),
      Raises(ValueError, r"pair 1: dimension mismatch"), id="sinkhorn(pairs)-dim-between-pairs"),
    P(lambda e: sinkhorn([(_meta(5, 2), torch.ones(6, 2))]),
      Raises(ValueError, r"pair 0: source points is a tensor on the 'meta' device"),
      id="sinkhorn(pairs)-meta-tensor"),
    P(lambda e: sinkhorn([(X5, Y6)], C=C),
      Raises(ValueError, r"C given without b"), id="sinkhorn(pairs)-cost-ignored"),
    P(lambda e: sinkhorn((X5, Y6)), Returns(shape=(1, 5)), id="sinkhorn(pairs)-single-pair"),
    P(lambda e: sinkhorn([(X5, Y6)], epsilon=1e-8, max_iter=50),
      Returns(shape=(1, 5)), id="sinkhorn(pairs)-tiny-epsilon"),
    P(lambda e: sinkhorn(IMAGES[:2].astype(np.float32), epsilon=1e8),
      Returns(shape=(2, 16)), id="sinkhorn(pairs)-huge-epsilon-images"),
    # issue 22: the geometry choice, half precision, autograd, and saying non-convergence
    P(lambda e: sinkhorn(A, B, C, geometry="online"),
      Raises(ValueError, r"geometry='online' computes the costs from the supports x and y"),
      id="sinkhorn-online-with-cost-matrix"),
    P(lambda e: sinkhorn(A, B, x=X5, y=Y6, geometry="sparse"),
      Raises(ValueError, r"geometry='sparse' is not one of \('auto', 'dense', 'online'\)"),
      id="sinkhorn-unknown-geometry"),
    P(lambda e: sinkhorn([(X5, Y6)], geometry=None),
      Raises(ValueError, r"geometry=None is not one of"), id="sinkhorn(pairs)-geometry-none"),
    P(lambda e: sinkhorn(A, B, x=_with(X5, (0, 0), NaN), y=Y6, geometry="online"),
      Raises(ValueError, r"x contains NaN or infinite"), id="sinkhorn-online-nan-support"),
    P(lambda e: sinkhorn(A, B, x=X5, y=Y6, epsilon=1e-8, max_iter=50, geometry="online"),
      Returns(shape=(5,), check=_sinkhorn_tiny_epsilon, warns=ConvergenceWarning),
      id="sinkhorn-online-tiny-epsilon"),
    P(lambda e: sinkhorn(A, B, x=1e3 * X5, y=1e3 * Y6, epsilon=1e8, geometry="online"),
      Returns(shape=(5,)), id="sinkhorn-online-huge-epsilon"),
    P(lambda e: sinkhorn(A, B, x=np.zeros((5, 2)), y=np.zeros((6, 2)), geometry="online"),
      Returns(shape=(5,)), id="sinkhorn-online-duplicate-points"),
    P(lambda e: sinkhorn(_with(A, 0, 0.0), B, x=X5, y=Y6, geometry="online"),
      Returns(shape=(5,), finite=False,
              check=lambda r: _minus_inf_where(r.f, np.arange(5) == 0)),
      id="sinkhorn-online-zero-weight"),
    P(lambda e: sinkhorn([(X5, Y6), (X5[:3], Y6[:4])], geometry="online", cost="euclidean"),
      Returns(shape=(5,)), id="sinkhorn(pairs)-online-clouds"),
    P(lambda e: sinkhorn(IMAGES[:2], geometry="dense", epsilon=1e-8, max_iter=20),
      Returns(shape=(2, 16), warns=ConvergenceWarning), id="sinkhorn(pairs)-dense-on-grid"),
    P(lambda e: sinkhorn(A, B, C, epsilon=1e-8, max_iter=50),
      Returns(shape=(5,), warns=ConvergenceWarning, warns_match=r"1 of 1 problem stopped at "
              r"max_iter=50"), id="sinkhorn-max-iter-warns"),
    P(lambda e: sinkhorn(A, B, 1e6 * C, epsilon=1e-2),
      Returns(shape=(5,), warns=ConvergenceWarning), id="sinkhorn-huge-cost-warns"),
    P(lambda e: sinkhorn(torch.tensor(A).half(), torch.tensor(B), torch.tensor(C)),
      Raises(TypeError, r"a has dtype torch.float16: sinkhorn computes in float32 or float64"),
      id="sinkhorn-float16-weights"),
    P(lambda e: sinkhorn(torch.tensor(A), torch.tensor(B), torch.tensor(C).bfloat16()),
      Raises(TypeError, r"C has dtype torch.bfloat16"), id="sinkhorn-bfloat16-cost"),
    P(lambda e: sinkhorn(A, B, x=X5.astype(np.float16), y=Y6),
      Raises(TypeError, r"x has dtype numpy float16"), id="sinkhorn-numpy-float16-support"),
    P(lambda e: sinkhorn([(torch.tensor(X5).bfloat16(), torch.tensor(Y6))]),
      Raises(TypeError, r"a has dtype torch.bfloat16"), id="sinkhorn(pairs)-bfloat16"),
    P(lambda e: sinkhorn(torch.tensor(A).half(), torch.tensor(B), torch.tensor(C),
                         dtype="float32"),
      Returns(shape=(5,)), id="sinkhorn-float16-converted-on-request"),
    P(lambda e: sinkhorn(A, B, C, dtype="float16"),
      Raises(ValueError, r"dtype='float16' is not supported; use 'float32' or 'float64'"),
      id="sinkhorn-float16-dtype-argument"),
    P(lambda e: sinkhorn(torch.tensor(A), torch.tensor(B), torch.tensor(C).requires_grad_()),
      Returns(shape=(5,), warns=UserWarning, warns_match=r"C requires grad, but sinkhorn does "
              r"not differentiate through its iterations", check=lambda r: _detached(r.f)),
      id="sinkhorn-requires-grad-warns-detached"),
    # issue 19.3: init is resolved in one place (as_initializer), which names what it accepts
    P(lambda e: sinkhorn(A, B, C, init="meta"),
      Raises(ValueError, r"init='meta' is not supported; init accepts 'zeros', 'gaussian', "
             r"potentials f"), id="sinkhorn-init-unknown-name"),
    P(lambda e: sinkhorn(A, B, C, init=0.0),
      Raises(TypeError, r"init of type float is not supported; init accepts"),
      id="sinkhorn-init-number"),
    P(lambda e: sinkhorn(A, B, C, init=StandardScaler()),
      Raises(TypeError, r"init of type StandardScaler is not supported"),
      id="sinkhorn-init-not-an-initializer"),
    P(lambda e: sinkhorn(A, B, C, init=(np.zeros(5), np.zeros(6), np.zeros(5))),
      Raises(ValueError, r"init as a tuple must be \(f, g\) or \(None, g\), got 3 items"),
      id="sinkhorn-init-three-tuple"),
    P(lambda e: sinkhorn(A, B, C, init=(None, None)),
      Raises(ValueError, r"init: GivenPotentials needs f or g, got neither"),
      id="sinkhorn-init-neither-f-nor-g"),
    P(lambda e: sinkhorn(A, B, C, init=GivenPotentials(np.zeros(4))),
      Raises(ValueError, r"init f has shape \(1, 4\), expected \(n_pairs, 5\)"),
      id="sinkhorn-init-given-potentials-wrong-length"),
    P(lambda e: sinkhorn(A, B, C, init=GivenPotentials(_with(np.zeros(5), 1, NaN))),
      Raises(ValueError, r"init f must be finite on atoms with positive weight"),
      id="sinkhorn-init-given-potentials-nan"),
    P(lambda e: sinkhorn(A, B, C, init=MetaSinkhornTransport()),
      Raises(NotFittedError, r"init=MetaSinkhornTransport\(\.\.\.\) is not fitted yet"),
      id="sinkhorn-init-unfitted-estimator"),
    P(lambda e: sinkhorn(IMAGES, init=_WrongWidth()),
      Raises(ValueError, r"init=_WrongWidth\(\) gave f of shape \(6, 17\) for a batch of 6 "
             r"pairs with 16 source atoms; expected \(6, 16\)"),
      id="sinkhorn(pairs)-init-custom-wrong-shape"),
    P(lambda e: sinkhorn(IMAGES, init=GaussianInitializer()), Returns(shape=(6, 16)),
      id="sinkhorn(pairs)-init-gaussian-object"),
    P(lambda e: sinkhorn(IMAGES, init=e.ms), Returns(shape=(6, 16)),
      id="sinkhorn(pairs)-init-fitted-estimator"),
    P(lambda e: sinkhorn(CLOUDS, init=e.ms),
      Raises(ValueError, r"MetaSinkhornTransport needs histograms on supports shared"),
      id="sinkhorn(pairs)-init-estimator-on-clouds"),
    P(lambda e: sinkhorn(BIG_IMAGES, init=e.ms),
      Raises(ValueError, r"the pairs have 25 source and 25 target atoms, but the estimator "
             r"was fitted on 16 and 16"), id="sinkhorn(pairs)-init-estimator-other-grid"),
]

CONJUGATE = [
    P(lambda e: conjugate(_half_square, _with(X5, (0, 1), NaN)),
      Raises(ValueError, r"y contains NaN"), id="conjugate-nan"),
    P(lambda e: conjugate(_half_square, X5, _with(X5, (0, 0), INF)),
      Raises(ValueError, r"x_init contains NaN or infinite"), id="conjugate-inf-init"),
    P(lambda e: conjugate(_half_square, np.ones((3, 2), dtype=int)),
      Returns(shape=(3, 2), check=_grad_of_half_square), id="conjugate-int-to-float64"),
    P(lambda e: conjugate(_half_square, X5.astype(object)),
      Raises(TypeError, r"y must be an array of numbers, got an object array"),
      id="conjugate-object"),
    P(lambda e: conjugate(_half_square, X5.astype(complex)),
      Raises(TypeError, r"y must be real, got complex"), id="conjugate-complex"),
    P(lambda e: conjugate(_half_square, "abc"),
      Raises(TypeError, r"y must be an array of numbers, got str"), id="conjugate-string"),
    P(lambda e: conjugate(_half_square, _meta(3, 2)),
      Raises(ValueError, r"y is a tensor on the 'meta' device"), id="conjugate-meta-y"),
    P(lambda e: conjugate(_half_square, torch.ones(3, 2), _meta(3, 2)),
      Raises(ValueError, r"x_init is a tensor on the 'meta' device"), id="conjugate-meta-init"),
    P(lambda e: conjugate(_half_square, np.ones((2, 3, 2))),
      Raises(ValueError, r"y must have shape \(B, d\) or \(d,\)"), id="conjugate-3d"),
    P(lambda e: conjugate(_half_square, np.ones((3, 0))),
      Raises(ValueError, r"y has points of dimension 0"), id="conjugate-zero-dimension"),
    P(lambda e: conjugate(_half_square, np.zeros((0, 2))),
      Returns(check=_empty_result), id="conjugate-empty-batch"),
    P(lambda e: conjugate(_half_square, X5, X5[:3]),
      Raises(ValueError, r"x_init has shape \(3, 2\); expected y's \(5, 2\)"),
      id="conjugate-init-shape"),
    P(lambda e: conjugate(3, X5), Raises(TypeError, r"f must be a callable"),
      id="conjugate-not-callable"),
    P(lambda e: conjugate(e.nw, X5),
      Raises(TypeError, r"got NeuralW2Transport \(for a fitted estimator, pass its "
             r"predict_potentials\(\)\)"), id="conjugate-estimator"),
    P(lambda e: conjugate(e.pot, _RNG.random((4, 3))),
      Raises(ValueError, r"y has dimension 3, but the potential f is defined on dimension 2"),
      id="conjugate-potential-dim-mismatch"),
    P(lambda e: conjugate(e.nw.potential_, torch.rand(4, 3)),
      Raises(ValueError, r"y has dimension 3, but the potential f is defined on dimension 2"),
      id="conjugate-module-dim-mismatch"),
    P(lambda e: conjugate(e.pot, _RNG.random((4, 2))),
      Returns(shape=(4, 2)), id="conjugate-float64-numpy-float32-potential"),
    P(lambda e: conjugate(e.nw.potential_, torch.rand(4, 2, dtype=torch.float64)),
      Returns(shape=(4, 2)), id="conjugate-float64-tensor-float32-module"),
    P(lambda e: conjugate(_half_square, [[1.0, 2.0], [1.0]]),
      Raises(ValueError, r"y is ragged"), id="conjugate-ragged"),
    P(lambda e: conjugate(_half_square, np.zeros((4, 2))),
      Returns(shape=(4, 2)), id="conjugate-duplicate-points"),
    P(lambda e: conjugate(_half_square, np.ones(2)),
      Returns(shape=(2,)), id="conjugate-1d-is-one-point"),
]

MS_METHODS = ("predict_potentials", "predict_plan", "transform", "refine", "score")


def _ms(method: str, data: Any, estimator: str = "ms") -> Callable[[Any], Any]:
    return lambda e: getattr(getattr(e, estimator), method)(data)


META_SINKHORN = [
    *(P(_ms(m, NAN_IMAGES), Raises(ValueError, r"pair 0: images_a contains NaN"),
        id=f"MetaSinkhornTransport.{m}-nan") for m in MS_METHODS),
    *(P(_ms(m, BIG_IMAGES),
        Raises(ValueError, r"25 source and 25 target atoms.*fitted on 16 and 16"),
        id=f"MetaSinkhornTransport.{m}-size-differs-from-fit") for m in MS_METHODS),
    *(P(_ms(m, _meta(2, 2, 4, 4)), Raises(ValueError, r"images_a is a tensor on the 'meta'"),
        id=f"MetaSinkhornTransport.{m}-meta-tensor") for m in MS_METHODS),
    P(lambda e: _sinkhorn_fit().fit(NAN_IMAGES),
      Raises(ValueError, r"pair 0: images_a contains NaN"), id="MetaSinkhornTransport.fit-nan"),
    P(lambda e: _sinkhorn_fit().fit(CLOUDS),
      Raises(ValueError, r"needs histograms on supports shared by all pairs"),
      id="MetaSinkhornTransport.fit-point-clouds"),
    P(lambda e: _sinkhorn_fit().fit(_meta(2, 2, 4, 4)),
      Raises(ValueError, r"'meta' device"), id="MetaSinkhornTransport.fit-meta-tensor"),
    P(lambda e: _sinkhorn_fit().fit(np.zeros((0, 2, 4, 4))),
      Raises(ValueError, r"no pairs"), id="MetaSinkhornTransport.fit-empty-collection"),
    P(lambda e: _sinkhorn_fit().fit(IMAGES[0]),
      Raises(ValueError, r"image pairs of shape \(N, 2, H, W\), got shape \(2, 4, 4\)"),
      id="MetaSinkhornTransport.fit-single-pair"),
    P(lambda e: _sinkhorn_fit(model="unet").fit(IMAGES),
      Raises(ValueError, r"model='unet' is not 'conv', None or a callable"),
      id="MetaSinkhornTransport.fit-unknown-model-name"),
    P(lambda e: _sinkhorn_fit(model="conv").fit(
        HistogramPairs(IMAGES[:, 0, 0], IMAGES[:, 1, 0], np.arange(8.0).reshape(4, 2))),
      Raises(ValueError, r"model='conv' needs source histograms on a 2-D grid"),
      id="MetaSinkhornTransport.fit-conv-off-a-grid"),
    P(lambda e: _sinkhorn_fit(model="conv").fit(IMAGES).predict_potentials(IMAGES[:2]),
      Returns(shape=(2, 16)), id="MetaSinkhornTransport(model='conv').fit-predict"),
    P(lambda e: _sinkhorn_fit(device="meta").fit(IMAGES),
      Raises(ValueError, r"device='meta' holds no data"),
      id="MetaSinkhornTransport.fit-meta-device-parameter"),
    P(_ms("predict_potentials", _with(IMAGES[:2], (1, 1, 0, 0), -1.0)),
      Raises(ValueError, r"pair 1: target weights are negative"),
      id="MetaSinkhornTransport.predict_potentials-negative"),
    P(_ms("predict_potentials", _with(IMAGES[:2], (1, 0), 0.0)),
      Raises(ValueError, r"pair 1: source weights have zero total mass"),
      id="MetaSinkhornTransport.predict_potentials-all-zero-image"),
    P(_ms("predict_potentials", _ZERO_PIXELS),
      Returns(finite=False, check=_minus_inf_on_zero_pixels),
      id="MetaSinkhornTransport.predict_potentials-zero-pixels-give-minus-inf"),
    P(_ms("predict_potentials", np.zeros((2, 2, 0, 4))),
      Raises(ValueError, r"source measures are empty \(0 atoms\)"),
      id="MetaSinkhornTransport.predict_potentials-empty-images"),
    P(_ms("predict_potentials", (10 * IMAGES[:2]).astype(np.uint8) + 1),
      Returns(shape=(2, 16)), id="MetaSinkhornTransport.predict_potentials-int-images"),
    P(_ms("predict_potentials", IMAGES[:2].astype(object)),
      Raises(TypeError, r"object array"), id="MetaSinkhornTransport.predict_potentials-object"),
    P(_ms("predict_potentials", IMAGES[:2].astype(complex)),
      Raises(TypeError, r"images_a must be real, got complex"),
      id="MetaSinkhornTransport.predict_potentials-complex"),
    P(_ms("predict_potentials", IMAGES[:2].astype(str)),
      Raises(TypeError, r"images_a must be an array of numbers, got dtype <U"),
      id="MetaSinkhornTransport.predict_potentials-strings"),
    P(_ms("predict_potentials", CLOUDS),
      Raises(ValueError, r"needs histograms on supports shared by all pairs"),
      id="MetaSinkhornTransport.predict_potentials-point-clouds"),
    P(_ms("predict_potentials", IMAGES[:2, 0].reshape(-1)),
      Raises(ValueError, r"image pairs of shape \(N, 2, H, W\), got shape \(32,\)"),
      id="MetaSinkhornTransport.predict_potentials-1d"),
    P(_ms("predict_potentials", [[[1.0, 2.0], [3.0]]]),
      Raises(TypeError, r"pair 0: expected \(Xs, Xt\)"),
      id="MetaSinkhornTransport.predict_potentials-ragged"),
    *(P(_ms(m, IMAGES[:2], "ms_tiny"), Returns(),
        id=f"MetaSinkhornTransport(epsilon=1e-8).{m}-finite") for m in MS_METHODS),
    *(P(_ms(m, IMAGES[:2], "ms_huge"), Returns(),
        id=f"MetaSinkhornTransport(epsilon=1e8).{m}-finite") for m in MS_METHODS),
    P(lambda e: _sinkhorn_fit().fit(HistogramPairs(IMAGES[:, 0, 0], IMAGES[:, 1, 0],
                                                   np.zeros((4, 2)))).predict_potentials(
        HistogramPairs(IMAGES[:2, 0, 1], IMAGES[:2, 1, 1], np.zeros((4, 2)))),
      Returns(shape=(2, 4)), id="MetaSinkhornTransport.fit-predict-duplicate-support"),
    *(P(_ms("calibrate", data), Raises(ValueError, message),
        id=f"MetaSinkhornTransport.calibrate-{problem}")
      for problem, data, message in (
          ("nan", NAN_IMAGES, r"pair 0: images_a contains NaN"),
          ("size-differs-from-fit", BIG_IMAGES, r"25 source and 25 target atoms"))),
    *(P(lambda e, scales=scales: e.ms.calibrate(IMAGES, scales=scales),
        Raises(ValueError, message), id=f"MetaSinkhornTransport.calibrate-scales-{problem}")
      for problem, scales, message in (
          ("empty", (), r"scales must be a non-empty sequence of numbers, got \(\)"),
          ("string", "0.5", r"scales must be a non-empty sequence of numbers, got '0.5'"),
          ("negative", (1.0, -0.5), r"scales must hold finite numbers >= 0, got -0.5"),
          ("nan", (0.5, float("nan")), r"scales must hold finite numbers >= 0, got nan"))),
    P(lambda e: e.ms.calibrate(IMAGES, tol=0.0),
      Raises(ValueError, r"tol must be a finite positive number, got 0.0"),
      id="MetaSinkhornTransport.calibrate-tol-0"),
    P(lambda e: e.ms.refine(IMAGES, init=np.zeros((6, 16))),
      Raises(TypeError, r"init of type ndarray is not one of 'meta', 'zeros', 'gaussian'; to "
             r"start from another initializer or from potentials, call "
             r"skmetaot.sinkhorn\(pairs, init=...\)"),
      id="MetaSinkhornTransport.refine-init-array"),
]

MI_METHODS = ("predict_params", "predict_potentials", "transform", "inverse_transform",
              "refine", "score")


def _mi(method: str, data: Any, estimator: str = "mi") -> Callable[[Any], Any]:
    return lambda e: getattr(getattr(e, estimator), method)(data)


def _weighted(weights: Any) -> list:
    return [((XS, weights), XT)]


META_ICNN = [
    *(P(_mi(m, [(_with(XS, (0, 0), NaN), XT)]),
        Raises(ValueError, r"pair 0 source contains NaN"),
        id=f"MetaICNNTransport.{m}-nan") for m in MI_METHODS),
    *(P(_mi(m, [(_RNG.random((5, 3)), _RNG.random((5, 3)))]),
        Raises(ValueError, r"dimension 3, but the estimator was fitted on dimension 2"),
        id=f"MetaICNNTransport.{m}-dim-differs-from-fit") for m in MI_METHODS),
    *(P(_mi(m, [(_meta(5, 2), torch.ones(6, 2))]),
        Raises(ValueError, r"pair 0 source is a tensor on the 'meta' device"),
        id=f"MetaICNNTransport.{m}-meta-tensor") for m in MI_METHODS),
    *(P(_mi(m, []), Raises(ValueError, r"no pairs"),
        id=f"MetaICNNTransport.{m}-empty-collection") for m in MI_METHODS),
    *(P(lambda e, m=m: getattr(e.mi, m)(CLOUDS[:2], points=[XS]),
        Raises(ValueError, r"points holds 1 arrays but there are 2 pairs"),
        id=f"MetaICNNTransport.{m}-points-count") for m in ("transform", "inverse_transform")),
    *(P(lambda e, m=m: getattr(e.mi, m)(CLOUDS[:2], points=XS),
        Raises(ValueError, r"points is one array of shape \(20, 2\) but there are 2 pairs"),
        id=f"MetaICNNTransport.{m}-points-one-array") for m in ("transform",
                                                                 "inverse_transform")),
    *(P(lambda e, m=m: getattr(e.mi, m)(CLOUDS[:2], points=[XS, _RNG.random((4, 3))]),
        Raises(ValueError, r"pair 1: points must have shape \(n_samples, 2\), got \(4, 3\)"),
        id=f"MetaICNNTransport.{m}-points-dim") for m in ("transform", "inverse_transform")),
    *(P(lambda e, m=m: getattr(e.mi, m)(CLOUDS[:1], points=[_with(XS, (1, 1), NaN)]),
        Raises(ValueError, r"pair 0: points contains NaN"),
        id=f"MetaICNNTransport.{m}-points-nan") for m in ("transform", "inverse_transform")),
    *(P(lambda e, m=m: getattr(e.mi, m)(CLOUDS[:1], points=3.0),
        Raises(TypeError, r"points must be a list of arrays"),
        id=f"MetaICNNTransport.{m}-points-scalar") for m in ("transform", "inverse_transform")),
    P(lambda e: e.mi.transform(CLOUDS[:2], points=np.stack([XS, XS])),
      Returns(shape=(20, 2)), id="MetaICNNTransport.transform-points-3d-array"),
    P(lambda e: e.mi.transform(CLOUDS[:2], points=np.stack([XS] * 3)),
      Raises(ValueError, r"points holds 3 arrays but there are 2 pairs"),
      id="MetaICNNTransport.transform-points-3d-array-count"),
    P(lambda e: e.mi.inverse_transform(CLOUDS[:1], points=XS, solve=False),
      Returns(shape=(20, 2)), id="MetaICNNTransport.inverse_transform-one-pair-one-array"),
    P(lambda e: _icnn_fit().fit([(_with(XS, (0, 0), INF), XT)]),
      Raises(ValueError, r"pair 0 source contains NaN or infinite"),
      id="MetaICNNTransport.fit-inf"),
    P(lambda e: _icnn_fit().fit([(_meta(5, 2), torch.ones(6, 2))]),
      Raises(ValueError, r"'meta' device"), id="MetaICNNTransport.fit-meta-tensor"),
    P(lambda e: _icnn_fit().fit([]), Raises(ValueError, r"no pairs"),
      id="MetaICNNTransport.fit-empty-collection"),
    P(lambda e: _icnn_fit().fit([(np.zeros((5, 0)), np.zeros((5, 0)))]),
      Raises(ValueError, r"pair 0 source has points of dimension 0"),
      id="MetaICNNTransport.fit-zero-dimension"),
    P(_mi("predict_params", _weighted(_with(np.ones(20), 0, -1.0))),
      Raises(ValueError, r"pair 0 source weights.*negative"),
      id="MetaICNNTransport.predict_params-negative-weights"),
    P(_mi("predict_params", _weighted(np.zeros(20))),
      Raises(ValueError, r"pair 0 source weights.*zero total mass"),
      id="MetaICNNTransport.predict_params-zero-mass"),
    P(_mi("predict_params", _weighted(_with(np.ones(20), 0, NaN))),
      Raises(ValueError, r"pair 0 source weights contains NaN"),
      id="MetaICNNTransport.predict_params-nan-weights"),
    P(_mi("predict_params", _weighted(np.ones((20, 1)))),
      Raises(ValueError, r"pair 0 source weights must be 1-D"),
      id="MetaICNNTransport.predict_params-2d-weights"),
    P(_mi("predict_params", _weighted(np.ones(3))),
      Raises(ValueError, r"pair 0 source has 20 points but 3 weights"),
      id="MetaICNNTransport.predict_params-weights-length"),
    P(_mi("predict_params", [(np.zeros((0, 2)), XT)]),
      Raises(ValueError, r"pair 0 source is an empty measure"),
      id="MetaICNNTransport.predict_params-empty-measure"),
    P(_mi("predict_params", [(np.arange(10).reshape(5, 2), np.ones((6, 2), dtype=np.int32))]),
      Returns(), id="MetaICNNTransport.predict_params-int-to-float"),
    P(_mi("predict_params", [(XS.astype(object), XT)]),
      Raises(TypeError, r"pair 0 source must be an array of numbers, got an object array"),
      id="MetaICNNTransport.predict_params-object"),
    P(_mi("predict_params", [(XS, XT.astype(complex))]),
      Raises(TypeError, r"pair 0 target must be real"),
      id="MetaICNNTransport.predict_params-complex"),
    P(_mi("predict_params", [(XS.astype(str), XT)]),
      Raises(TypeError, r"pair 0 source must be an array of numbers, got dtype <U"),
      id="MetaICNNTransport.predict_params-strings"),
    P(_mi("predict_params", [("abc", XT)]),
      Raises(TypeError, r"pair 0 source must be an array of points.*got str"),
      id="MetaICNNTransport.predict_params-string-measure"),
    P(_mi("predict_params", [(np.ones(5), np.ones(6))]),
      Raises(ValueError, r"pair 0 source must be 2-D"),
      id="MetaICNNTransport.predict_params-1d"),
    P(_mi("predict_params", [([[1.0, 2.0], [1.0]], XT)]),
      Raises(ValueError, r"pair 0 source is ragged"),
      id="MetaICNNTransport.predict_params-ragged"),
    P(_mi("predict_params", [(XS, _RNG.random((5, 3)))]),
      Raises(ValueError, r"pair 0 target has dimension 3, but pair 0 source has 2"),
      id="MetaICNNTransport.predict_params-dim-within-pair"),
    P(_mi("predict_params", [(XS, XT), (_RNG.random((5, 3)), _RNG.random((5, 3)))]),
      Raises(ValueError, r"pair 1 source has dimension 3"),
      id="MetaICNNTransport.predict_params-dim-between-pairs"),
    P(_mi("predict_params", (XS, XT)), Returns(shape=(1, 78)),
      id="MetaICNNTransport.predict_params-single-pair"),
    P(_mi("predict_params", XS),
      Raises(ValueError, r"image pairs of shape \(N, 2, H, W, C\), got shape \(20, 2\)"),
      id="MetaICNNTransport.predict_params-one-array"),
    P(_mi("predict_params", None),
      Raises(TypeError, r"cannot interpret a NoneType as measure pairs"),
      id="MetaICNNTransport.predict_params-None"),
    P(_mi("predict_params", [(XS, XT, XT)]),
      Raises(TypeError, r"pair 0: expected \(source, target\)"),
      id="MetaICNNTransport.predict_params-triple"),
    P(_mi("predict_params", [(COLOUR[0][0][..., :2], XS)]),
      Raises(ValueError, r"mix of images and point clouds"),
      id="MetaICNNTransport.predict_params-images-and-clouds"),
    P(_mi("transform", [(np.zeros((5, 2)), np.zeros((6, 2)))]),
      Returns(shape=(5, 2)), id="MetaICNNTransport.transform-duplicate-points"),
    P(_mi("score", [(np.zeros((5, 2)), np.zeros((6, 2)))]),
      Returns(), id="MetaICNNTransport.score-duplicate-points"),
    # images (H, W, C)
    P(_mi("transform", COLOUR[:1], "mi_img"), Returns(shape=(6, 5, 3)),
      id="MetaICNNTransport(images).transform"),
    P(_mi("transform", [(_with(COLOUR[0][0], (0, 0, 0), NaN), COLOUR[0][1])], "mi_img"),
      Raises(ValueError, r"pair 0 source: image has NaN"),
      id="MetaICNNTransport(images).transform-nan"),
    P(_mi("transform", [(_meta(6, 5, 3), _meta(6, 5, 3))], "mi_img"),
      Raises(ValueError, r"pair 0 source is a tensor on the 'meta' device"),
      id="MetaICNNTransport(images).transform-meta-tensor"),
    P(_mi("transform", [(np.ones((4, 4, 5)), np.ones((4, 4, 5)))], "mi_img"),
      Raises(ValueError, r"at most 4 channels"),
      id="MetaICNNTransport(images).transform-too-many-channels"),
    P(_mi("transform", [(np.ones((6, 5, 2)), np.ones((6, 5, 2)))], "mi_img"),
      Raises(ValueError, r"dimension 2, but the estimator was fitted on dimension 3"),
      id="MetaICNNTransport(images).transform-channels-differ-from-fit"),
    P(_mi("transform", [(_RNG.random((5, 3)), _RNG.random((5, 3)))], "mi_img"),
      Raises(ValueError, r"encodes images"),
      id="MetaICNNTransport(images).transform-point-clouds"),
    P(_mi("transform", [(np.zeros((0, 4, 3)), COLOUR[0][1])], "mi_img"),
      Raises(ValueError, r"pair 0 source: image has no pixels"),
      id="MetaICNNTransport(images).transform-empty-image"),
]

NW_MAP_METHODS = ("transform", "inverse_transform")


def _nw(method: str, data: Any, estimator: str = "nw") -> Callable[[Any], Any]:
    return lambda e: getattr(getattr(e, estimator), method)(data)


SK = "sklearn"
NEURAL_W2 = [
    # ot.da's form fit(Xs, ys, Xt, yt)
    P(lambda e: _w2_fit().fit(XS, np.zeros(19), XT),
      Raises(ValueError, r"ys has 19 labels but Xs has 20 samples"),
      id="NeuralW2Transport.fit-ys-length"),
    P(lambda e: _w2_fit().fit((XS, XT), np.zeros(21)),
      Raises(ValueError, r"y has 21 labels but the source of X has 20 samples"),
      id="NeuralW2Transport.fit-pair-y-length"),
    P(lambda e: _w2_fit().fit(XS, None, XT, np.zeros(3)),
      Raises(ValueError, r"yt has 3 labels but Xt has 25 samples"),
      id="NeuralW2Transport.fit-yt-length"),
    P(lambda e: _w2_fit(target="normal").fit(XS, np.zeros(19)),
      Raises(ValueError, r"y has 19 labels but X has 20 samples"),
      id="NeuralW2Transport.fit-target-y-length"),
    P(lambda e: _w2_fit().fit(XS, yt=np.zeros(20)),
      Raises(ValueError, r"yt labels the target samples Xt, but no Xt was given"),
      id="NeuralW2Transport.fit-yt-without-Xt"),
    P(lambda e: _w2_fit(target=XT).fit(XS, None, XT),
      Raises(ValueError, r"fit got Xt and the estimator has a target"),
      id="NeuralW2Transport.fit-Xt-and-target"),
    P(lambda e: _w2_fit().fit(XS, Xs=XS, Xt=XT),
      Raises(TypeError, r"fit got both X and Xs"), id="NeuralW2Transport.fit-X-and-Xs"),
    P(lambda e: _w2_fit().fit(Xs=XS, Xt=XT, y=np.zeros(20), ys=np.zeros(20)),
      Raises(TypeError, r"fit got both y and ys"), id="NeuralW2Transport.fit-y-and-ys"),
    P(lambda e: _w2_fit().fit(Xt=XT),
      Raises(ValueError, r"fit needs the source samples"), id="NeuralW2Transport.fit-no-source"),
    P(lambda e: _w2_fit().fit(XS, 3, XT),
      Raises(TypeError, r"ys must be an array of labels"), id="NeuralW2Transport.fit-ys-scalar"),
    P(lambda e: _w2_fit().fit(XS, None, _with(XT, (0, 0), NaN)),
      Raises(ValueError, r"pair 0: target points contains NaN"),
      id="NeuralW2Transport.fit-Xt-nan"),
    P(lambda e: _w2_fit().fit(Xs=XS, ys=np.zeros(20), Xt=XT, yt=-np.ones(25)).transform(XS),
      Returns(shape=(20, 2)), id="NeuralW2Transport.fit-ot-da-keywords"),
    P(lambda e: _w2_fit().fit((_with(XS, (0, 0), NaN), XT)),
      Raises(ValueError, r"pair 0: source points contains NaN"), id="NeuralW2Transport.fit-nan"),
    P(lambda e: _w2_fit().fit(CLOUDS),
      Raises(ValueError, r"takes one pair \(Xs, Xt\), got 3 pairs"),
      id="NeuralW2Transport.fit-collection"),
    P(lambda e: _w2_fit().fit([]), Raises(ValueError, r"no pairs"),
      id="NeuralW2Transport.fit-empty-collection"),
    P(lambda e: _w2_fit().fit((_meta(5, 2), torch.ones(6, 2))),
      Raises(ValueError, r"pair 0: source points is a tensor on the 'meta' device"),
      id="NeuralW2Transport.fit-meta-tensor"),
    P(lambda e: _w2_fit().fit((XS, _RNG.random((5, 3)))),
      Raises(ValueError, r"pair 0: dimension mismatch"), id="NeuralW2Transport.fit-dim-mismatch"),
    P(lambda e: _w2_fit().fit((np.zeros((0, 2)), XT)),
      Raises(ValueError, r"pair 0: source points is an empty measure"),
      id="NeuralW2Transport.fit-empty-measure"),
    P(lambda e: _w2_fit().fit(((XS, _with(np.ones(20), 0, -1)), XT)),
      Raises(ValueError, r"pair 0: source weights.*negative"),
      id="NeuralW2Transport.fit-negative-weights"),
    P(lambda e: _w2_fit().fit((XS, (XT, np.zeros(25)))),
      Raises(ValueError, r"pair 0: target weights.*zero total mass"),
      id="NeuralW2Transport.fit-zero-mass"),
    P(lambda e: _w2_fit().fit((XS.astype(object), XT)),
      Raises(TypeError, r"pair 0: source points.*object array"), id="NeuralW2Transport.fit-object"),
    P(lambda e: _w2_fit().fit((XS, XT.astype(complex))),
      Raises(TypeError, r"pair 0: target points must be real"), id="NeuralW2Transport.fit-complex"),
    P(lambda e: _w2_fit().fit("abc"),
      Raises(TypeError, r"cannot interpret a str as measure pairs"),
      id="NeuralW2Transport.fit-string"),
    P(lambda e: _w2_fit().fit(([[1.0, 2.0], [1.0]], XT)),
      Raises(TypeError, r"pair 0: expected \(Xs, Xt\)"), id="NeuralW2Transport.fit-ragged"),
    P(lambda e: _w2_fit().fit(np.ones(5)),
      Raises(ValueError, r"image pairs of shape"), id="NeuralW2Transport.fit-1d"),
    P(lambda e: _w2_fit().fit(XS),
      Raises(ValueError, r"expected one pair \(Xs, Xt\), got one array.*target='normal'"),
      id="NeuralW2Transport.fit-one-array-without-target"),
    P(lambda e: _w2_fit().fit((np.arange(40).reshape(20, 2), np.arange(40).reshape(20, 2) + 1))
      .transform(np.ones((3, 2), dtype=int)), Returns(shape=(3, 2)),
      id="NeuralW2Transport.fit-int-to-float"),
    P(lambda e: _w2_fit().fit((np.zeros((10, 2)), np.ones((10, 2)))).transform(np.zeros((3, 2))),
      Returns(shape=(3, 2)), id="NeuralW2Transport.fit-duplicate-points"),
    P(lambda e: _w2_fit().fit([(XS, XT)]).transform(XS[:4]), Returns(shape=(4, 2)),
      id="NeuralW2Transport.fit-collection-of-one"),
    P(lambda e: _w2_fit().fit(IMAGES[:1]).transform(GRID[:3]), Returns(shape=(3, 2)),
      id="NeuralW2Transport.fit-one-image-pair"),
    *(P(_nw(m, _with(XS, (0, 0), NaN)), Raises(ValueError, r"Input X contains NaN", SK),
        id=f"NeuralW2Transport.{m}-nan") for m in NW_MAP_METHODS),
    *(P(_nw(m, _with(XS, (0, 0), INF)), Raises(ValueError, r"Input X contains infinity", SK),
        id=f"NeuralW2Transport.{m}-inf") for m in NW_MAP_METHODS),
    *(P(_nw(m, _RNG.random((5, 3))),
        Raises(ValueError, r"X has 3 features, but NeuralW2Transport is expecting 2", SK),
        id=f"NeuralW2Transport.{m}-dim-differs-from-fit") for m in NW_MAP_METHODS),
    *(P(_nw(m, np.ones(2)), Raises(ValueError, r"Expected 2D array, got 1D array", SK),
        id=f"NeuralW2Transport.{m}-1d") for m in NW_MAP_METHODS),
    *(P(_nw(m, np.zeros((0, 2))), Raises(ValueError, r"Found array with 0 sample", SK),
        id=f"NeuralW2Transport.{m}-empty") for m in NW_MAP_METHODS),
    *(P(_nw(m, XS.astype(complex)), Raises(ValueError, r"Complex data not supported", SK),
        id=f"NeuralW2Transport.{m}-complex") for m in NW_MAP_METHODS),
    *(P(_nw(m, _meta(5, 2)), Raises(ValueError, r"X is a tensor on the 'meta' device"),
        id=f"NeuralW2Transport.{m}-meta-tensor") for m in NW_MAP_METHODS),
    *(P(_nw(m, XS.astype(str)), Raises(TypeError, r"X must be an array of numbers, got dtype"),
        id=f"NeuralW2Transport.{m}-strings") for m in NW_MAP_METHODS),
    *(P(_nw(m, (XS, XT)), Raises(TypeError, r"X must be one array of points.*got a pair"),
        id=f"NeuralW2Transport.{m}-pair") for m in NW_MAP_METHODS),
    *(P(_nw(m, [[1.0, 2.0], [1.0]]), Raises(ValueError, r"X is ragged"),
        id=f"NeuralW2Transport.{m}-ragged") for m in NW_MAP_METHODS),
    *(P(_nw(m, np.ones((3, 2), dtype=int)), Returns(shape=(3, 2)),
        id=f"NeuralW2Transport.{m}-int-to-float") for m in NW_MAP_METHODS),
    *(P(_nw(m, XS.astype(object)), Returns(shape=(20, 2)),
        id=f"NeuralW2Transport.{m}-numeric-object-array") for m in NW_MAP_METHODS),
    *(P(_nw(m, torch.tensor(_with(XS, (0, 0), NaN))), Raises(ValueError, r"contains NaN"),
        id=f"NeuralW2Transport.{m}-nan-tensor") for m in NW_MAP_METHODS),
    *(P(_nw(m, torch.rand(5, 3)), Raises(ValueError, r"must have shape \(n_samples, 2\)"),
        id=f"NeuralW2Transport.{m}-dim-tensor") for m in NW_MAP_METHODS),
    P(_nw("score", (_with(XS, (0, 0), NaN), XT)),
      Raises(ValueError, r"pair 0: source points contains NaN"), id="NeuralW2Transport.score-nan"),
    P(_nw("score", (_RNG.random((5, 3)), _RNG.random((5, 3)))),
      Raises(ValueError, r"dimension 3, but the estimator was fitted on dimension 2"),
      id="NeuralW2Transport.score-dim-differs-from-fit"),
    P(_nw("score", (_meta(5, 2), torch.ones(6, 2))),
      Raises(ValueError, r"'meta' device"), id="NeuralW2Transport.score-meta-tensor"),
    P(_nw("score", CLOUDS), Raises(ValueError, r"got 3 pairs"),
      id="NeuralW2Transport.score-collection"),
    P(_nw("score", XS), Raises(ValueError, r"expected one pair \(Xs, Xt\), got one array"),
      id="NeuralW2Transport.score-one-array"),
    P(_nw("refine", (_with(XS, (0, 0), NaN), XT)),
      Raises(ValueError, r"pair 0: source points contains NaN"),
      id="NeuralW2Transport.refine-nan"),
    P(_nw("refine", (_RNG.random((5, 3)), _RNG.random((5, 3)))),
      Raises(ValueError, r"dimension 3, but the estimator was fitted on dimension 2"),
      id="NeuralW2Transport.refine-dim-differs-from-fit"),
    P(_nw("refine", (_meta(5, 2), torch.ones(6, 2))),
      Raises(ValueError, r"'meta' device"), id="NeuralW2Transport.refine-meta-tensor"),
    P(_nw("refine", CLOUDS), Raises(ValueError, r"got 3 pairs"),
      id="NeuralW2Transport.refine-collection"),
    # target="normal": a scikit-learn transformer on one plain array X
    P(lambda e: _w2_fit(target="normal").fit(_with(XS, (0, 0), NaN)),
      Raises(ValueError, r"Input X contains NaN", SK),
      id="NeuralW2Transport(target=normal).fit-nan"),
    P(lambda e: _w2_fit(target="normal").fit(np.ones(5)),
      Raises(ValueError, r"Expected 2D array, got 1D array", SK),
      id="NeuralW2Transport(target=normal).fit-1d"),
    P(lambda e: _w2_fit(target="normal").fit(np.zeros((0, 2))),
      Raises(ValueError, r"Found array with 0 sample", SK),
      id="NeuralW2Transport(target=normal).fit-empty"),
    P(lambda e: _w2_fit(target="normal").fit(XS.astype(complex)),
      Raises(ValueError, r"Complex data not supported", SK),
      id="NeuralW2Transport(target=normal).fit-complex"),
    P(lambda e: _w2_fit(target="normal").fit(_meta(5, 2)),
      Raises(ValueError, r"X is a tensor on the 'meta' device"),
      id="NeuralW2Transport(target=normal).fit-meta-tensor"),
    P(lambda e: _w2_fit(target="normal").fit((XS, XT)),
      Raises(TypeError, r"X must be one array of points.*got a pair"),
      id="NeuralW2Transport(target=normal).fit-pair"),
    P(lambda e: _w2_fit(target="normal").fit(XS.astype(str)),
      Raises(TypeError, r"X must be an array of numbers, got dtype <U"),
      id="NeuralW2Transport(target=normal).fit-strings"),
    P(lambda e: _w2_fit(target="normal").fit([[1.0, 2.0], [1.0]]),
      Raises(ValueError, r"X is ragged"), id="NeuralW2Transport(target=normal).fit-ragged"),
    P(lambda e: _w2_fit(target="normal").fit(np.arange(40).reshape(20, 2)).transform(XS[:3]),
      Returns(shape=(3, 2)), id="NeuralW2Transport(target=normal).fit-int-to-float"),
    P(lambda e: _w2_fit(target="normal").fit(torch.rand(20, 2)).transform(torch.rand(3, 2)),
      Returns(shape=(3, 2)), id="NeuralW2Transport(target=normal).fit-tensor"),
    P(_nw("score", _with(XS, (0, 0), NaN), "ng"), Raises(ValueError, r"Input X contains NaN", SK),
      id="NeuralW2Transport(target=normal).score-nan"),
    P(_nw("score", _meta(5, 2), "ng"), Raises(ValueError, r"X is a tensor on the 'meta' device"),
      id="NeuralW2Transport(target=normal).score-meta-tensor"),
    P(_nw("transform", _RNG.random((5, 3)), "ng"),
      Raises(ValueError, r"X has 3 features", SK),
      id="NeuralW2Transport(target=normal).transform-dim-differs-from-fit"),
    P(lambda e: e.ng.refine((XS, XT), max_iter=1),
      Raises(TypeError, r"X must be one array of points.*got a pair"),
      id="NeuralW2Transport(target=normal).refine-pair"),
    P(lambda e: e.ng.refine(_meta(5, 2), max_iter=1),
      Raises(ValueError, r"X is a tensor on the 'meta' device"),
      id="NeuralW2Transport(target=normal).refine-meta-tensor"),
]

POT_METHODS = ("__call__", "transform", "inverse_transform", "conjugate")
POT_ARG = {"__call__": "x", "transform": "x", "inverse_transform": "y", "conjugate": "y"}
POT_SHAPE = {"__call__": (3,), "transform": (3, 2), "inverse_transform": (3, 2),
             "conjugate": (3,)}


def _pot(method: str, data: Any) -> Callable[[Any], Any]:
    return lambda e: getattr(e.pot, method)(data)


POTENTIAL = [
    *(P(_pot(m, _with(XS, (0, 0), NaN)),
        Raises(ValueError, rf"^{POT_ARG[m]} contains NaN or infinite"),
        id=f"TransportPotential.{m}-nan") for m in POT_METHODS),
    *(P(_pot(m, _RNG.random((5, 3))),
        Raises(ValueError, rf"^{POT_ARG[m]} must have shape \(n_samples, 2\), got \(5, 3\)"),
        id=f"TransportPotential.{m}-dim-differs-from-fit") for m in POT_METHODS),
    *(P(_pot(m, np.ones(2)),
        Raises(ValueError, rf"^{POT_ARG[m]} must have shape \(n_samples, 2\), got \(2,\)"),
        id=f"TransportPotential.{m}-1d") for m in POT_METHODS),
    *(P(_pot(m, _meta(5, 2)), Raises(ValueError, rf"^{POT_ARG[m]} is a tensor on the 'meta'"),
        id=f"TransportPotential.{m}-meta-tensor") for m in POT_METHODS),
    *(P(_pot(m, XS.astype(object)), Raises(TypeError, r"got an object array"),
        id=f"TransportPotential.{m}-object") for m in POT_METHODS),
    *(P(_pot(m, XS.astype(complex)), Raises(TypeError, r"must be real, got complex"),
        id=f"TransportPotential.{m}-complex") for m in POT_METHODS),
    *(P(_pot(m, XS.astype(str)), Raises(TypeError, r"must be an array of numbers, got dtype"),
        id=f"TransportPotential.{m}-strings") for m in POT_METHODS),
    *(P(_pot(m, (XS, XT)), Raises(ValueError, rf"^{POT_ARG[m]} is ragged"),
        id=f"TransportPotential.{m}-pair") for m in POT_METHODS),
    *(P(_pot(m, np.ones((3, 2), dtype=int)), Returns(shape=POT_SHAPE[m]),
        id=f"TransportPotential.{m}-int-to-float") for m in POT_METHODS),
    *(P(_pot(m, np.zeros((3, 2))), Returns(shape=POT_SHAPE[m]),
        id=f"TransportPotential.{m}-duplicate-points") for m in POT_METHODS),
    *(P(_pot(m, np.zeros((0, 2))), Returns(shape=(0, *POT_SHAPE[m][1:])),
        id=f"TransportPotential.{m}-empty") for m in POT_METHODS),
    P(lambda e: e.pot.dual_value(XS, XT, _with(np.ones(20), 0, NaN)),
      Raises(ValueError, r"a \(weights of x\) contains NaN"),
      id="TransportPotential.dual_value-nan-weights"),
    P(lambda e: e.pot.dual_value(XS, XT, -np.ones(20)),
      Raises(ValueError, r"a \(weights of x\) has negative weights"),
      id="TransportPotential.dual_value-negative-weights"),
    P(lambda e: e.pot.dual_value(XS, XT, None, np.ones(3)),
      Raises(ValueError, r"b \(weights of y\) has 3 entries but there are 25 points"),
      id="TransportPotential.dual_value-weights-length"),
    P(lambda e: e.pot.dual_value(np.zeros((0, 2)), XT),
      Raises(ValueError, r"empty measure"), id="TransportPotential.dual_value-empty"),
]

def _pot_sinkhorn(*args, **kwargs):
    from skmetaot.pot import sinkhorn as pot_sinkhorn

    return pot_sinkhorn(*args, **kwargs)


def _da(name: str):
    import skmetaot.da

    return getattr(skmetaot.da, name)


# Issue 21: the POT drop-in, skmetaot.da, and the data-object paths (broadcast, numpy costs).
DROPIN_AND_DA = [
    P(lambda e: _pot_sinkhorn(A, B, C, 0.0), Raises(ValueError, r"reg must be a finite positive"),
      id="pot.sinkhorn-zero-reg"),
    P(lambda e: _pot_sinkhorn(A, B, C, 0.1, method="greenkhorn"),
      Raises(ValueError, r"method='greenkhorn' is not run here"), id="pot.sinkhorn-method"),
    P(lambda e: _pot_sinkhorn(A, B, C.T, 0.1), Raises(ValueError, r"a has 5 entries.*\(6, 5\)"),
      id="pot.sinkhorn-transposed-cost"),
    P(lambda e: _pot_sinkhorn(_with(A, 0, NaN), B, C, 0.1),
      Raises(ValueError, r"a contains NaN"), id="pot.sinkhorn-nan-weight"),
    P(lambda e: _pot_sinkhorn(A, B, _with(C, (1, 1), INF), 0.1),
      Raises(ValueError, r"M \(cost matrix\) contains NaN or infinite"),
      id="pot.sinkhorn-inf-cost"),
    P(lambda e: _pot_sinkhorn(A, B, C, 0.1, numItermax=0),
      Raises(ValueError, r"numItermax must be a positive integer"),
      id="pot.sinkhorn-no-iterations"),
    P(lambda e: _pot_sinkhorn(np.ones((2, 5)) / 5, np.ones((3, 6)) / 6, C, 0.1),
      Raises(ValueError, r"a holds 2, b holds 3"), id="pot.sinkhorn-batch-mismatch"),
    P(lambda e: _pot_sinkhorn(A, B, C, 1e-8, numItermax=3, warn=False), Returns(shape=(5, 6)),
      id="pot.sinkhorn-tiny-reg-stays-finite"),
    P(lambda e: _da("SinkhornTransport")().fit(Xs=XS), Raises(ValueError, r"missing: Xt"),
      id="da.SinkhornTransport-no-target"),
    P(lambda e: _da("W2MapTransport")().fit(XS, None),
      Raises(ValueError, r"missing: Xt.*Pipeline"), id="da.W2MapTransport-fit-as-in-a-pipeline"),
    P(lambda e: _da("SinkhornMappingAdapter")().fit(XS, np.zeros(20)),
      Raises(ValueError, r"got no target samples"), id="da.SinkhornMappingAdapter-no-target"),
    P(lambda e: _da("SinkhornMappingAdapter")().fit(XS),
      Raises(ValueError, r"needs sample_domain"), id="da.SinkhornMappingAdapter-no-domains"),
    P(lambda e: HistogramPairs(np.ones((2, 5)), np.ones((3, 6))),
      Raises(ValueError, r"a has 2 pairs but b has 3"), id="HistogramPairs-broadcast-mismatch"),
    P(lambda e: HistogramPairs(np.ones((3, 5)), np.ones(6)), Returns(shape=(5, 1)),
      id="HistogramPairs-broadcast-one-target"),
    P(lambda e: sinkhorn(CLOUDS, cost=lambda u, v: np.full((3, 3), "x")),
      Raises(TypeError, r"cost callable's result must be an array of numbers"),
      id="sinkhorn(pairs)-cost-returns-strings"),
]
CASES = [*AS_PAIRS, *SINKHORN, *CONJUGATE, *META_SINKHORN, *META_ICNN, *NEURAL_W2, *POTENTIAL,
         *DROPIN_AND_DA]


def _raised_from(excinfo: pytest.ExceptionInfo, source: str) -> None:
    """The exception's last frame is skmetaot's validation (or scikit-learn's check_array)."""
    path = Path(str(excinfo.traceback[-1].path)).resolve()
    if source == "skmetaot":
        assert PACKAGE in path.parents, f"raised from {path}, not from skmetaot"
    else:
        assert path == SKLEARN_VALIDATION, f"raised from {path}, not scikit-learn's validation"


@pytest.mark.parametrize(("call", "outcome"), CASES)
def test_bad_input(call: Callable[[Any], Any], outcome: Raises | Returns,
                   fitted: SimpleNamespace) -> None:
    if isinstance(outcome, Raises):
        with pytest.raises(outcome.exc, match=outcome.match) as excinfo:
            call(fitted)
        assert type(excinfo.value) is outcome.exc, repr(excinfo.value)
        _raised_from(excinfo, outcome.source)
        return
    if outcome.warns is not None:
        with pytest.warns(outcome.warns, match=outcome.warns_match):
            out = call(fitted)
    else:
        out = call(fitted)
    arrays = _arrays(out)
    assert arrays, "the call returned no numbers"
    if outcome.shape is not None:
        assert arrays[0].shape == outcome.shape
    if outcome.finite:
        for array in arrays:
            assert np.isfinite(array.astype(float)).all(), "non-finite output"
    if outcome.check is not None:
        outcome.check(out)


def test_battery_size() -> None:
    # Every entry point is in the table, and the ids are unique.
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) >= 60
    for entry in ("as_pairs-", "sinkhorn-", "sinkhorn(pairs)-", "conjugate-",
                  "MetaSinkhornTransport.", "MetaICNNTransport.", "MetaICNNTransport(images).",
                  "NeuralW2Transport.", "NeuralW2Transport(target=normal).",
                  "TransportPotential."):
        assert any(i.startswith(entry) for i in ids), entry


# -- issue 22: failed training steps are recovered, and W2 results do not depend on units -----
def _maps_after(estimator: Any, fit: Callable[[Any], Any], predict: Callable[[Any], Any]) -> Any:
    """Fit (divergence allowed: it keeps the last good state) and predict with the result."""
    try:
        fit(estimator)
    except skmetaot.amortize.TrainingDiverged:
        pass
    return predict(estimator)


def _within(bound: float) -> Callable[[Any], None]:
    """The output stays at the scale of the data: no wild state was kept."""
    def check(out: Any) -> None:
        assert max(np.abs(array).max() for array in _arrays(out)) < bound
    return check


def _scaled(scale: float) -> tuple[np.ndarray, np.ndarray]:
    return scale * XS, scale * (1 + 0.5 * XT)


def _w2_at_scale(scale: float) -> Any:
    xs, xt = _scaled(scale)
    return _w2_fit().fit((xs, xt)).transform(xs[:3])


def _lbfgs_from_nan(e: Any) -> Any:
    from skmetaot.solvers.conjugate import solve_conjugate

    return solve_conjugate(lambda x: torch.log(x[:, 0]) + (x * x).sum(-1),
                           torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), method="lbfgs")


def _refined_or_kept(e: Any) -> Any:
    """Refinement at a far too large rate: refined potentials, or the last good parameters."""
    try:
        return e.mi.refine(CLOUDS, learning_rate=1e3, max_iter=20)
    except skmetaot.amortize.TrainingDiverged as error:
        return error.params


def _non_finite_conjugate_error() -> type[Exception]:
    from skmetaot.solvers.conjugate import NonFiniteConjugateError

    return NonFiniteConjugateError


RELIABLE_W2 = [
    P(lambda e: _maps_after(_w2_fit(learning_rate=1e3, max_iter=30),
                            lambda est: est.fit((XS, XT)), lambda est: est.transform(XS)),
      Returns(shape=(20, 2), check=_within(10 * np.abs(XT).max() + 10)),
      id="NeuralW2Transport.fit-learning-rate-1e3"),
    P(lambda e: _maps_after(_w2_fit(learning_rate=1e3, max_iter=30),
                            lambda est: est.fit((XS, XT)), lambda est: est.score((XS, XT))),
      Returns(), id="NeuralW2Transport.score-after-learning-rate-1e3"),
    P(lambda e: _maps_after(_w2_fit(target="normal", learning_rate=1e3, max_iter=30),
                            lambda est: est.fit(XS), lambda est: est.inverse_transform(XT)),
      Returns(shape=(25, 2), check=_within(10 * np.abs(XS).max() + 10)),
      id="NeuralW2Transport(target=normal).fit-learning-rate-1e3"),
    P(lambda e: _w2_at_scale(1e-6), Returns(shape=(3, 2), check=_within(1e-4)),
      id="NeuralW2Transport.fit-scale-1e-6"),
    P(lambda e: _w2_at_scale(1e6), Returns(shape=(3, 2), check=_within(1e8)),
      id="NeuralW2Transport.fit-scale-1e6"),
    P(lambda e: _w2_fit().fit((np.ones((20, 2)), np.ones((25, 2)))).transform(np.ones((3, 2))),
      Returns(shape=(3, 2)), id="NeuralW2Transport.fit-one-point-both-sides"),
    P(lambda e: _maps_after(_icnn_fit(learning_rate=1e3, max_iter=20),
                            lambda est: est.fit(CLOUDS), lambda est: est.transform(CLOUDS)),
      Returns(shape=(20, 2), check=_within(100)), id="MetaICNNTransport.fit-learning-rate-1e3"),
    P(_refined_or_kept, Returns(check=_within(100)),
      id="MetaICNNTransport.refine-learning-rate-1e3"),
    P(_mi("transform", [_scaled(1e6)]), Returns(shape=(20, 2), check=_within(1e8)),
      id="MetaICNNTransport.transform-scale-1e6"),
    P(_mi("score", [_scaled(1e-6)]), Returns(), id="MetaICNNTransport.score-scale-1e-6"),
    P(_mi("transform", [(np.ones((20, 2)), np.ones((25, 2)))]), Returns(shape=(20, 2)),
      id="MetaICNNTransport.transform-one-point-both-sides"),
    P(_mi("transform", [(np.full((6, 5, 3), 0.5), np.full((6, 5, 3), 0.5))], "mi_img"),
      Returns(shape=(6, 5, 3)), id="MetaICNNTransport(images).transform-one-colour-both-sides"),
    P(lambda e: TransportPotential(_half_square, 2, scale=0.0),
      Raises(ValueError, r"scale must be a finite positive number, got 0.0"),
      id="TransportPotential-zero-scale"),
    P(lambda e: TransportPotential(_half_square, 2, shift=[0.0, NaN]),
      Raises(ValueError, r"shift must be 2 finite numbers"), id="TransportPotential-nan-shift"),
    P(lambda e: TransportPotential(_half_square, 2, shift=[1.0, 2.0, 3.0]),
      Raises(ValueError, r"shift must be 2 finite numbers"),
      id="TransportPotential-shift-dimension"),
    P(_lbfgs_from_nan, Raises(_non_finite_conjugate_error(), r"not finite at x_init"),
      id="solve_conjugate-non-finite-at-start"),
]


@pytest.mark.parametrize(("call", "outcome"), RELIABLE_W2)
def test_reliable_w2(call: Callable[[Any], Any], outcome: Raises | Returns,
                     fitted: SimpleNamespace) -> None:
    test_bad_input(call, outcome, fitted)
