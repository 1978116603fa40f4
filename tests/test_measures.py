"""Measure pairs: accepted input forms, validation errors, indexing and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import skmetaot
from skmetaot import HistogramPairs, MeasurePairs, as_pairs, pairs_from_images, sinkhorn
from skmetaot.datasets import make_mnist_pairs
from skmetaot.measures import image_grid

_RNG = np.random.default_rng(1234)
X = _RNG.random((5, 2))
Y = _RNG.random((6, 2))
X3 = _RNG.random((5, 3))
Y3 = _RNG.random((6, 3))
A = _RNG.random(5) + 0.1
B = _RNG.random(6) + 0.1
IMAGES = _RNG.random((3, 4, 4))
IMAGE_PAIRS = _RNG.random((3, 2, 4, 4))


def _with(array, index, value):
    out = np.array(array, dtype=float, copy=True)
    out[index] = value
    return out


def _object_pairs():
    out = np.empty(2, dtype=object)
    out[0] = (X, Y)
    out[1] = (X, Y)
    return out


# Each case: (callable, exception type, regex the message must match).
# The regexes name the problem and, where there is one, the pair index.
VALIDATION_CASES = {
    # -- non-finite values --------------------------------------------------------------
    "as_pairs-nan-source-points-pair1": (
        lambda: as_pairs([(X, Y), (_with(X, (2, 1), np.nan), Y)]),
        ValueError, r"pair 1.*source points.*NaN"),
    "as_pairs-inf-target-points-pair0": (
        lambda: as_pairs([(X, _with(Y, (0, 0), np.inf)), (X, Y)]),
        ValueError, r"pair 0.*target points.*(NaN|inf)"),
    "as_pairs-nan-source-weights-pair1": (
        lambda: as_pairs([((X, A), (Y, B)), ((X, _with(A, 3, np.nan)), (Y, B))]),
        ValueError, r"pair 1.*source weights.*NaN"),
    "as_pairs-inf-target-weights-pair0": (
        lambda: as_pairs([((X, A), (Y, _with(B, 0, np.inf))), ((X, A), (Y, B))]),
        ValueError, r"pair 0.*target weights.*(NaN|inf)"),
    "MeasurePairs-nan-points-pair1": (
        lambda: MeasurePairs([X, X], [Y, _with(Y, (1, 1), np.nan)]),
        ValueError, r"pair 1.*target points.*NaN"),
    "MeasurePairs-inf-weights-pair1": (
        lambda: MeasurePairs([X, X], [Y, Y], [A, _with(A, 0, -np.inf)]),
        ValueError, r"pair 1.*source weights.*(NaN|inf)"),
    "HistogramPairs-nan-a-pair1": (
        lambda: HistogramPairs(np.stack([A, _with(A, 2, np.nan)]), np.stack([B, B])),
        ValueError, r"pair 1.*source weights.*NaN"),
    "HistogramPairs-inf-b-pair2": (
        lambda: HistogramPairs(np.stack([A] * 3), np.stack([B, B, _with(B, 4, np.inf)])),
        ValueError, r"pair 2.*target weights.*inf"),
    "HistogramPairs-nan-support": (
        lambda: HistogramPairs(np.stack([A, A]), np.stack([B, B]), _with(X, (0, 0), np.nan), Y),
        ValueError, r"x \(source support\).*NaN"),
    "HistogramPairs-inf-target-support": (
        lambda: HistogramPairs(np.stack([A, A]), np.stack([B, B]), X, _with(Y, (5, 1), np.inf)),
        ValueError, r"y \(target support\).*(NaN|inf)"),
    "pairs_from_images-nan-pair2": (
        lambda: pairs_from_images(_with(IMAGES, (2, 1, 1), np.nan), IMAGES),
        ValueError, r"pair 2.*NaN"),
    "pairs_from_images-inf-target-pair1": (
        lambda: pairs_from_images(IMAGES, _with(IMAGES, (1, 0, 3), np.inf)),
        ValueError, r"pair 1.*(NaN|inf)"),
    "as_pairs-images-nan-pair1": (
        lambda: as_pairs(_with(IMAGE_PAIRS, (1, 1, 2, 2), np.nan)),
        ValueError, r"pair 1.*NaN"),
    # -- negative weights ---------------------------------------------------------------
    "as_pairs-negative-target-weights-pair1": (
        lambda: as_pairs([((X, A), (Y, B)), ((X, A), (Y, _with(B, 2, -0.5)))]),
        ValueError, r"pair 1.*target weights.*negative"),
    "MeasurePairs-negative-weights-pair0": (
        lambda: MeasurePairs([X], [Y], [_with(A, 0, -1.0)]),
        ValueError, r"pair 0.*source weights.*negative"),
    "HistogramPairs-negative-b-pair1": (
        lambda: HistogramPairs(np.stack([A, A]), np.stack([B, _with(B, 0, -1e-3)])),
        ValueError, r"pair 1.*target weights.*negative"),
    "pairs_from_images-negative-pixel-pair1": (
        lambda: pairs_from_images(_with(IMAGES, (1, 0, 0), -2.0), IMAGES),
        ValueError, r"pair 1.*negative"),
    # -- zero total mass ----------------------------------------------------------------
    "as_pairs-zero-mass-source-pair1": (
        lambda: as_pairs([((X, A), (Y, B)), ((X, np.zeros(5)), (Y, B))]),
        ValueError, r"pair 1.*source weights.*zero total mass"),
    "MeasurePairs-zero-mass-target-pair0": (
        lambda: MeasurePairs([X], [Y], None, [np.zeros(6)]),
        ValueError, r"pair 0.*target weights.*zero total mass"),
    "HistogramPairs-zero-mass-a-pair1": (
        lambda: HistogramPairs(np.stack([A, np.zeros(5)]), np.stack([B, B])),
        ValueError, r"pair 1.*source weights.*zero total mass"),
    "pairs_from_images-black-image-pair2": (
        lambda: pairs_from_images(IMAGES, _with(IMAGES, 2, 0.0)),
        ValueError, r"pair 2.*target weights.*zero total mass"),
    # -- empty measures -----------------------------------------------------------------
    "as_pairs-zero-points-pair1": (
        lambda: as_pairs([(X, Y), (np.zeros((0, 2)), Y)]),
        ValueError, r"pair 1.*source points.*empty"),
    "MeasurePairs-zero-target-points": (
        lambda: MeasurePairs([X], [np.zeros((0, 2))]),
        ValueError, r"pair 0.*target points.*empty"),
    "MeasurePairs-zero-dimensional-points": (
        lambda: MeasurePairs([np.zeros((5, 0))], [np.zeros((6, 0))]),
        ValueError, r"pair 0.*dimension 0"),
    "HistogramPairs-zero-atoms": (
        lambda: HistogramPairs(np.zeros((2, 0)), np.ones((2, 3))),
        ValueError, r"source measures are empty"),
    "HistogramPairs-zero-target-atoms": (
        lambda: HistogramPairs(np.ones((2, 3)), np.zeros((2, 0))),
        ValueError, r"target measures are empty"),
    "pairs_from_images-zero-pixels": (
        lambda: pairs_from_images(np.zeros((2, 0, 4)), np.zeros((2, 0, 4))),
        ValueError, r"empty"),
    "as_pairs-empty-collection": (lambda: as_pairs([]), ValueError, r"no pairs"),
    "MeasurePairs-empty-collection": (lambda: MeasurePairs([], []), ValueError, r"no pairs"),
    "HistogramPairs-no-pairs": (
        lambda: HistogramPairs(np.ones((0, 3)), np.ones((0, 3))), ValueError, r"no pairs"),
    "pairs_from_images-no-images": (
        lambda: pairs_from_images(np.ones((0, 4, 4)), np.ones((0, 4, 4))), ValueError, r"no pairs"),
    # -- dimension mismatches -----------------------------------------------------------
    "as_pairs-dim-source-vs-target-pair0": (
        lambda: as_pairs([(X, Y3), (X, Y)]),
        ValueError, r"pair 0.*dimension mismatch.*d=2.*d=3"),
    "as_pairs-dim-between-pairs-pair1": (
        lambda: as_pairs([(X, Y), (X3, Y3)]),
        ValueError, r"pair 1.*dimension mismatch.*pair 0"),
    "MeasurePairs-dim-between-pairs-pair2": (
        lambda: MeasurePairs([X, X, X3], [Y, Y, Y3]),
        ValueError, r"pair 2.*dimension mismatch"),
    "HistogramPairs-dim-x-vs-y": (
        lambda: HistogramPairs(np.ones((2, 5)), np.ones((2, 6)), X, Y3),
        ValueError, r"dimension mismatch.*d=2.*d=3"),
    # -- wrong ranks and shapes ---------------------------------------------------------
    "MeasurePairs-1d-points-pair1": (
        lambda: MeasurePairs([X, np.ones(5)], [Y, Y]),
        ValueError, r"pair 1.*source points.*2-D"),
    "as_pairs-1d-points-pair1": (
        lambda: as_pairs([(X, Y), (np.ones(5), np.ones(6))]),
        TypeError, r"pair 1.*2-D"),
    "as_pairs-images-N3HW": (
        lambda: as_pairs(np.ones((3, 3, 4, 4))),
        ValueError, r"\(N, 2, H, W\).*\(3, 3, 4, 4\)"),
    "as_pairs-3d-array": (
        lambda: as_pairs(np.ones((3, 4, 4))), ValueError, r"\(N, 2, H, W\)"),
    "pairs_from_images-2d": (
        lambda: pairs_from_images(IMAGES[0], IMAGES[0]), ValueError, r"images_a.*\(N, H, W\)"),
    "pairs_from_images-4d": (
        lambda: pairs_from_images(IMAGES, IMAGE_PAIRS), ValueError, r"images_b.*\(N, H, W\)"),
    "pairs_from_images-count-mismatch": (
        lambda: pairs_from_images(IMAGES[:2], IMAGES), ValueError, r"2 images.*3"),
    "MeasurePairs-weights-wrong-length-pair1": (
        lambda: MeasurePairs([X, X], [Y, Y], [A, A[:4]]),
        ValueError, r"pair 1.*source weights.*4 entries.*5 points"),
    "as_pairs-weights-wrong-length-pair0": (
        lambda: as_pairs([((X, A), (Y, np.ones(5)))]),
        ValueError, r"pair 0.*target weights.*5 entries.*6 points"),
    "MeasurePairs-2d-weights": (
        lambda: MeasurePairs([X], [Y], [A[:, None]]),
        ValueError, r"pair 0.*source weights.*1-D"),
    "MeasurePairs-count-mismatch": (
        lambda: MeasurePairs([X, X], [Y]), ValueError, r"2 source.*1 target"),
    "HistogramPairs-3d-weights": (  # 1-D weights are one measure, paired with every other
        lambda: HistogramPairs(A[None, None], B), ValueError, r"a \(source weights\).*2-D"),
    "HistogramPairs-support-wrong-length": (
        lambda: HistogramPairs(np.ones((2, 5)), np.ones((2, 6)), X[:4], Y),
        ValueError, r"x \(source support\).*4 points.*5"),
    "HistogramPairs-1d-support": (
        lambda: HistogramPairs(np.ones((2, 5)), np.ones((2, 6)), np.ones(5), Y),
        ValueError, r"x \(source support\).*2-D"),
    "HistogramPairs-pair-count-mismatch": (
        lambda: HistogramPairs(np.ones((2, 5)), np.ones((3, 5))), ValueError, r"2 pairs.*3"),
    # -- ragged input -------------------------------------------------------------------
    "as_pairs-ragged-points-pair1": (
        lambda: as_pairs([(X, Y), ([[0.0, 0.0], [1.0]], Y)]), TypeError, r"pair 1"),
    "MeasurePairs-ragged-points-pair1": (
        lambda: MeasurePairs([X, [[0.0, 0.0], [1.0]]], [Y, Y]),
        ValueError, r"pair 1.*source points.*ragged"),
    "HistogramPairs-ragged-weights": (
        lambda: HistogramPairs([[1.0, 2.0], [1.0]], [[1.0, 2.0], [1.0, 1.0]]),
        ValueError, r"a \(source weights\).*ragged"),
    # -- wrong types --------------------------------------------------------------------
    "as_pairs-None": (lambda: as_pairs(None), TypeError, r"NoneType"),
    "as_pairs-dict": (lambda: as_pairs({"x": X, "y": Y}), TypeError, r"dict"),
    "as_pairs-string": (lambda: as_pairs("pairs"), TypeError, r"str"),
    "as_pairs-int": (lambda: as_pairs(3), TypeError, r"int"),
    "as_pairs-object-array-of-pairs": (lambda: as_pairs(_object_pairs()), TypeError, r"object"),
    "as_pairs-object-image-array": (
        lambda: as_pairs(IMAGE_PAIRS.astype(object)), TypeError, r"object array"),
    "as_pairs-complex-image-array": (
        lambda: as_pairs(IMAGE_PAIRS.astype(complex)), TypeError, r"real.*complex"),
    "as_pairs-object-points-pair0": (
        lambda: as_pairs([(X.astype(object), Y)]), TypeError, r"pair 0.*source points.*object"),
    "as_pairs-complex-points-pair1": (
        lambda: as_pairs([(X, Y), (X, Y.astype(complex))]),
        TypeError, r"pair 1.*target points.*complex"),
    "as_pairs-string-points-pair0": (
        lambda: as_pairs([(X.astype(str), Y)]), TypeError, r"pair 0.*source points.*dtype"),
    "as_pairs-pair-of-strings": (lambda: as_pairs([("ab", "cd")]), TypeError, r"pair 0"),
    "as_pairs-complex-weights-pair0": (
        lambda: as_pairs([((X, A.astype(complex)), (Y, B))]),
        TypeError, r"pair 0.*source weights.*complex"),
    "MeasurePairs-None": (lambda: MeasurePairs(None, [Y]), TypeError, r"\bx\b"),
    "MeasurePairs-dict": (lambda: MeasurePairs({"p": X}, [Y]), TypeError, r"x must be a sequence"),
    "MeasurePairs-array-not-sequence": (
        lambda: MeasurePairs(np.stack([X, X]), [Y, Y]), TypeError, r"x must be a sequence"),
    "MeasurePairs-string-points": (
        lambda: MeasurePairs(["abc"], [Y]), TypeError, r"pair 0.*source points.*str"),
    "MeasurePairs-None-points-pair1": (
        lambda: MeasurePairs([X, None], [Y, Y]), TypeError, r"pair 1.*source points.*NoneType"),
    "MeasurePairs-object-weights": (
        lambda: MeasurePairs([X], [Y], [A.astype(object)]),
        TypeError, r"pair 0.*source weights.*object"),
    "HistogramPairs-None": (
        lambda: HistogramPairs(None, np.ones((2, 3))),
        TypeError, r"a \(source weights\).*NoneType"),
    "HistogramPairs-dict": (
        lambda: HistogramPairs(np.ones((2, 3)), {"b": 1}), TypeError, r"b \(target weights\)"),
    "HistogramPairs-string": (
        lambda: HistogramPairs("abc", np.ones((2, 3))), TypeError, r"a \(source weights\).*str"),
    "HistogramPairs-complex": (
        lambda: HistogramPairs(np.ones((2, 3), complex), np.ones((2, 3))),
        TypeError, r"a \(source weights\).*complex"),
    "HistogramPairs-object": (
        lambda: HistogramPairs(np.ones((2, 3)).astype(object), np.ones((2, 3))),
        TypeError, r"object array"),
    "HistogramPairs-complex-support": (
        lambda: HistogramPairs(np.ones((2, 5)), np.ones((2, 6)), X.astype(complex), Y),
        TypeError, r"x \(source support\).*complex"),
    "pairs_from_images-None": (
        lambda: pairs_from_images(None, IMAGES), TypeError, r"images_a.*NoneType"),
    "pairs_from_images-object": (
        lambda: pairs_from_images(IMAGES, IMAGES.astype(object)), TypeError, r"images_b.*object"),
    "pairs_from_images-complex": (
        lambda: pairs_from_images(IMAGES.astype(complex), IMAGES), TypeError, r"images_a.*complex"),
    "pairs_from_images-dict": (
        lambda: pairs_from_images({}, IMAGES), TypeError, r"images_a"),
    "pairs_from_images-string": (
        lambda: pairs_from_images("img", IMAGES), TypeError, r"images_a.*str"),
    # -- a single pair where a collection is needed -------------------------------------
    "as_pairs-single-pair-not-allowed": (
        lambda: as_pairs((X, Y), allow_single=False), TypeError, r"single pair"),
    "as_pairs-single-weighted-pair-not-allowed": (
        lambda: as_pairs(((X, A), (Y, B)), allow_single=False), TypeError, r"single pair"),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES), ids=list(VALIDATION_CASES))
def test_validation_error(case):
    func, exc_type, pattern = VALIDATION_CASES[case]
    with pytest.raises(exc_type, match=pattern):
        func()


def test_weight_errors_are_found_in_the_right_pair():
    # The same problem in different pairs is reported with the index of the first bad pair.
    for k in range(3):
        a = np.ones((3, 4))
        a[k, 1] = -1.0
        with pytest.raises(ValueError, match=rf"pair {k}: source weights are negative"):
            HistogramPairs(a, np.ones((3, 4)))


# -- accepted input forms -------------------------------------------------------------------
def test_measure_pairs_pass_through(cloud_pairs):
    pairs = as_pairs(cloud_pairs)
    assert as_pairs(pairs) is pairs
    hist = HistogramPairs(np.ones((2, 3)), np.ones((2, 4)))
    assert as_pairs(hist) is hist


def test_histogram_pairs_shapes_and_default_supports():
    a, b = np.arange(1.0, 7.0).reshape(2, 3), np.ones((2, 4))
    pairs = HistogramPairs(a, b)
    assert isinstance(pairs, MeasurePairs) and pairs.shared_support
    assert len(pairs) == pairs.n_pairs == 2
    assert pairs.a.shape == (2, 3) and pairs.b.shape == (2, 4)
    np.testing.assert_allclose(pairs.x[:, 0].numpy(), np.linspace(0, 1, 3))
    np.testing.assert_allclose(pairs.y[:, 0].numpy(), np.linspace(0, 1, 4))
    np.testing.assert_allclose(pairs.a.numpy(), a / a.sum(1, keepdims=True))
    assert pairs.source_sizes == [3, 3] and pairs.target_sizes == [4, 4]
    same = HistogramPairs(np.ones((2, 3)), np.ones((2, 3)))
    assert same.y is same.x


def test_histogram_pairs_keep_given_supports(rng):
    x, y = rng.random((5, 2)), rng.random((6, 2))
    pairs = HistogramPairs(rng.random((3, 5)), rng.random((3, 6)), x, y)
    np.testing.assert_array_equal(pairs.x.numpy(), x)
    np.testing.assert_array_equal(pairs.y.numpy(), y)
    assert pairs.dim == 2
    assert pairs.grid_x is None and pairs.grid_y is None


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_image_pair_array(backend, image_pairs):
    data = image_pairs if backend == "numpy" else torch.from_numpy(image_pairs)
    pairs = as_pairs(data)
    assert isinstance(pairs, HistogramPairs)
    assert pairs.kind.is_torch is (backend == "torch")
    assert pairs.a.shape == (3, 30) and pairs.b.shape == (3, 30)
    expected_a = image_pairs[:, 0].reshape(3, -1)
    np.testing.assert_allclose(pairs.a.numpy(), expected_a / expected_a.sum(1, keepdims=True))
    expected_b = image_pairs[:, 1].reshape(3, -1)
    np.testing.assert_allclose(pairs.b.numpy(), expected_b / expected_b.sum(1, keepdims=True))
    # The pixel grid of [0, 1]^2 is detected, so solvers can use the separable kernel.
    assert pairs.grid_x is not None and pairs.grid_y is not None
    assert [len(axis) for axis in pairs.grid_x] == [5, 6]
    np.testing.assert_allclose(pairs.x.numpy(), image_grid(5, 6).numpy())


def test_pairs_from_images_grid_and_uint8():
    images = np.zeros((2, 3, 4), dtype=np.uint8)
    images[0, 0, 0] = 255
    images[0, 2, 3] = 85
    images[1, 1, 2] = 7
    pairs = pairs_from_images(images, images[::-1])
    assert pairs.dtype == torch.float64
    np.testing.assert_allclose(pairs.a[0].sum().item(), 1.0)
    assert pairs.a[0, 0].item() == pytest.approx(0.75)
    assert pairs.a[0, 11].item() == pytest.approx(0.25)
    grid = pairs.x.numpy()
    assert grid.shape == (12, 2)
    # Row-major pixel centres: (row, col) coordinates scaled to [0, 1].
    np.testing.assert_allclose(grid[0], [0.0, 0.0])
    np.testing.assert_allclose(grid[1], [0.0, 1 / 3])
    np.testing.assert_allclose(grid[4], [0.5, 0.0])
    np.testing.assert_allclose(grid[-1], [1.0, 1.0])


def test_pairs_from_images_of_different_sizes(rng):
    pairs = pairs_from_images(rng.random((2, 4, 4)), rng.random((2, 3, 5)))
    assert pairs.x.shape == (16, 2) and pairs.y.shape == (15, 2)
    assert [len(v) for v in pairs.grid_y] == [3, 5]
    assert [len(u) for u in pairs.grid_x] == [4, 4]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_list_of_unweighted_pairs(backend, rng):
    raw = [(rng.random((5, 2)), rng.random((7, 2))), (rng.random((8, 2)), rng.random((3, 2)))]
    data = raw if backend == "numpy" else [tuple(map(torch.from_numpy, p)) for p in raw]
    pairs = as_pairs(data)
    assert type(pairs) is MeasurePairs
    assert pairs.kind.is_torch is (backend == "torch")
    assert len(pairs) == 2 and pairs.dim == 2
    assert pairs.source_sizes == [5, 8] and pairs.target_sizes == [7, 3]
    for k, (xs, xt) in enumerate(raw):
        np.testing.assert_array_equal(pairs.x[k].numpy(), xs)
        np.testing.assert_array_equal(pairs.y[k].numpy(), xt)
        np.testing.assert_allclose(pairs.a[k].numpy(), np.full(len(xs), 1 / len(xs)))
        np.testing.assert_allclose(pairs.b[k].numpy(), np.full(len(xt), 1 / len(xt)))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_list_of_weighted_pairs(backend, cloud_pairs):
    data = cloud_pairs
    if backend == "torch":
        data = [tuple(tuple(torch.from_numpy(v) for v in measure) for measure in pair)
                for pair in cloud_pairs]
    pairs = as_pairs(data)
    assert pairs.kind.is_torch is (backend == "torch")
    assert pairs.source_sizes == [5, 9, 6, 3] and pairs.target_sizes == [7, 4, 6, 8]
    for k, ((x, a), (y, b)) in enumerate(cloud_pairs):
        np.testing.assert_allclose(pairs.a[k].numpy(), a / a.sum())
        np.testing.assert_allclose(pairs.b[k].numpy(), b / b.sum())
        np.testing.assert_allclose(pairs.a[k].sum().item(), 1.0)
        np.testing.assert_array_equal(pairs.x[k].numpy(), x)
        np.testing.assert_array_equal(pairs.y[k].numpy(), y)


def test_single_pair_forms(rng):
    x, y = rng.random((4, 3)), rng.random((6, 3))
    a = np.array([1.0, 0.0, 2.0, 1.0])
    single = as_pairs((x, y))
    assert len(single) == 1 and single.source_sizes == [4] and single.target_sizes == [6]
    weighted = as_pairs(((x, a), (y, np.ones(6))))
    assert len(weighted) == 1
    np.testing.assert_allclose(weighted.a[0].numpy(), a / 4)
    mixed = as_pairs(((x, a), y))
    np.testing.assert_allclose(mixed.a[0].numpy(), a / 4)
    np.testing.assert_allclose(mixed.b[0].numpy(), np.full(6, 1 / 6))
    # Lists as well as tuples, and nested lists of numbers as points.
    listed = as_pairs([x.tolist(), y.tolist()])
    assert len(listed) == 1 and listed.dim == 3


def test_two_pairs_of_equal_shapes_are_not_mistaken_for_one(rng):
    x1, y1, x2, y2 = (rng.random((4, 2)) for _ in range(4))
    pairs = as_pairs([(x1, y1), (x2, y2)])
    assert len(pairs) == 2
    np.testing.assert_array_equal(pairs.y[1].numpy(), y2)


def test_dtypes_are_kept_or_promoted(rng):
    x32, y32 = rng.random((4, 2)).astype(np.float32), rng.random((5, 2)).astype(np.float32)
    assert as_pairs((x32, y32)).dtype == torch.float32
    assert as_pairs((x32, y32.astype(np.float64))).dtype == torch.float64
    assert as_pairs((np.ones((3, 2), int), np.zeros((2, 2), int))).dtype == torch.float64
    hist = HistogramPairs(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32))
    assert hist.dtype == torch.float32 and hist.x.dtype == torch.float32
    moved = hist.to(torch.float64)
    assert moved.a.dtype == torch.float64 and moved.x.dtype == torch.float64
    assert hist.a.dtype == torch.float32


def test_measure_pairs_constructor_with_partial_weights(rng):
    x, y = [rng.random((3, 2)), rng.random((4, 2))], [rng.random((5, 2)), rng.random((2, 2))]
    pairs = MeasurePairs(x, y, [None, np.array([1.0, 1.0, 2.0, 0.0])])
    np.testing.assert_allclose(pairs.a[0].numpy(), np.full(3, 1 / 3))
    np.testing.assert_allclose(pairs.a[1].numpy(), [0.25, 0.25, 0.5, 0.0])
    np.testing.assert_allclose(pairs.b[1].numpy(), [0.5, 0.5])
    assert "MeasurePairs" in repr(pairs) and "n_pairs=2" in repr(pairs)


# -- indexing -------------------------------------------------------------------------------
def test_measure_pairs_indexing(cloud_pairs):
    pairs = as_pairs(cloud_pairs)
    first = pairs[0]
    assert isinstance(first, MeasurePairs) and len(first) == 1
    assert first.source_sizes == [5]
    last = pairs[-1]
    assert last.source_sizes == [3]
    sliced = pairs[1:3]
    assert sliced.source_sizes == [9, 6] and sliced.target_sizes == [4, 6]
    picked = pairs[np.array([3, 0])]
    assert picked.source_sizes == [3, 5]
    np.testing.assert_array_equal(picked.x[1].numpy(), pairs.x[0].numpy())
    masked = pairs[np.array([True, False, True, False])]
    assert masked.source_sizes == [5, 6]
    from_tensor = pairs[torch.tensor([2])]
    assert from_tensor.source_sizes == [6]
    assert pairs[[1, 1]].source_sizes == [9, 9]
    # Indexing does not modify the original collection.
    assert len(pairs) == 4 and pairs.kind == picked.kind


def test_histogram_pairs_indexing(rng):
    a, b = rng.random((4, 3)), rng.random((4, 5))
    pairs = HistogramPairs(a, b)
    assert isinstance(pairs[0], HistogramPairs) and len(pairs[0]) == 1
    np.testing.assert_allclose(pairs[2].a[0].numpy(), a[2] / a[2].sum())
    np.testing.assert_allclose(pairs[-1].b[0].numpy(), b[3] / b[3].sum())
    assert len(pairs[1:]) == 3
    sub = pairs[np.array([3, 1])]
    np.testing.assert_allclose(sub.a.numpy(), pairs.a.numpy()[[3, 1]])
    assert len(pairs[np.array([False, True, True, False])]) == 2
    assert sub.x is pairs.x


@pytest.mark.parametrize("index", [4, -5, 10])
def test_out_of_range_int_index(index, rng):
    pairs = HistogramPairs(rng.random((4, 3)), rng.random((4, 3)))
    with pytest.raises(IndexError, match="out of range"):
        pairs[index]


@pytest.mark.parametrize("kind", ["histograms", "clouds"])
def test_out_of_range_index_array(kind, rng, cloud_pairs):
    # Like an int index (and like numpy), an index array must not wrap around silently.
    if kind == "histograms":
        pairs = HistogramPairs(rng.random((4, 3)), rng.random((4, 3)))
    else:
        pairs = as_pairs(cloud_pairs)
    with pytest.raises(IndexError):
        pairs[np.array([0, 6])]


# -- padding --------------------------------------------------------------------------------
def test_padded_measure_pairs(cloud_pairs):
    pairs = as_pairs(cloud_pairs)
    x, a, y, b = pairs.padded()
    assert x.shape == (4, 9, 2) and a.shape == (4, 9)
    assert y.shape == (4, 8, 2) and b.shape == (4, 8)
    for k, n in enumerate(pairs.source_sizes):
        np.testing.assert_allclose(a[k, :n].numpy(), pairs.a[k].numpy())
        assert torch.all(a[k, n:] == 0)
        np.testing.assert_array_equal(x[k, :n].numpy(), pairs.x[k].numpy())
    for k, m in enumerate(pairs.target_sizes):
        assert torch.all(b[k, m:] == 0)
        np.testing.assert_allclose(b[k].sum().item(), 1.0)
    xs, as_, ys, bs = pairs.padded([3, 1])
    assert xs.shape == (2, 9, 2) and ys.shape == (2, 8, 2)
    assert torch.all(as_[0, 3:] == 0) and torch.all(bs[1, 4:] == 0)
    np.testing.assert_allclose(as_[1].numpy(), pairs.a[1].numpy())


def test_padded_histogram_pairs(rng):
    pairs = HistogramPairs(rng.random((3, 4)), rng.random((3, 5)))
    x, a, y, b = pairs.padded()
    assert x.shape == (4, 1) and y.shape == (5, 1)
    assert a.shape == (3, 4) and b.shape == (3, 5)
    _, a_sub, _, b_sub = pairs.padded([2, 0])
    np.testing.assert_allclose(a_sub.numpy(), pairs.a.numpy()[[2, 0]])
    np.testing.assert_allclose(b_sub.numpy(), pairs.b.numpy()[[2, 0]])
    _, a_run, _, b_run = pairs.padded([1, 2])  # consecutive pairs: views of the weights
    assert a_run.data_ptr() == pairs.a[1].data_ptr() and torch.equal(b_run, pairs.b[1:])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n_pairs", [1, 5])
def test_solving_pairs_leaves_their_weights_untouched(dtype, n_pairs):
    # Batches of consecutive pairs see views of the weights: no solver may write into them.
    pairs = make_mnist_pairs(6, split="test", random_state=2, dtype=dtype)
    before = pairs.a.clone(), pairs.b.clone()
    for init in ("zeros", "gaussian"):
        sinkhorn(pairs[:n_pairs], epsilon=1e-2, tol=1e-4, init=init, warn=False)
        sinkhorn(pairs, epsilon=3e-3, tol=1e-3, batch_size=n_pairs, warn=False)
    assert torch.equal(pairs.a, before[0]) and torch.equal(pairs.b, before[1])


def test_weights_are_normalised(rng):
    raw = rng.random((3, 6)) * 17.0
    raw[1, :3] = 0.0
    pairs = HistogramPairs(raw, raw[:, ::-1])
    np.testing.assert_allclose(pairs.a.sum(1).numpy(), np.ones(3), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pairs.b.sum(1).numpy(), np.ones(3), rtol=0, atol=1e-15)
    assert torch.all(pairs.a[1, :3] == 0)
    clouds = as_pairs([((rng.random((4, 2)), raw[k, :4] + 1.0), (rng.random((2, 2)),
                                                                   np.array([3.0, 1.0])))
                       for k in range(3)])
    for k in range(3):
        assert clouds.a[k].sum().item() == pytest.approx(1.0, abs=1e-15)
        np.testing.assert_allclose(clouds.b[k].numpy(), [0.75, 0.25])


def test_package_exports():
    for name in skmetaot.__all__:
        assert hasattr(skmetaot, name)
    assert skmetaot.as_pairs is as_pairs


def test_grid_geometry_is_built_once_per_epsilon_and_rebuilt_by_to():
    pairs = HistogramPairs(torch.rand(4, 12, dtype=torch.float64),
                           torch.rand(4, 12, dtype=torch.float64), image_grid(3, 4))
    geometry = pairs.grid_geometry(0.1)
    assert pairs[1].grid_geometry(0.1) is geometry and pairs[2:].grid_geometry(0.1) is geometry
    assert pairs.grid_geometry(0.2) is not geometry
    assert pairs.grid_geometry(0.2).epsilon == 0.2
    # Another dtype gets kernels of its own, not the float64 ones.
    moved = pairs.to(torch.float32).grid_geometry(0.1)
    assert moved is not geometry and moved._costs[0].dtype == torch.float32
    # Moving to where the pairs already are keeps them, and their kernels.
    assert pairs.to(torch.float64, "cpu") is pairs
    assert pairs.to(torch.float64).grid_geometry(0.1) is geometry
    assert HistogramPairs(np.ones((2, 5)), np.ones((2, 5)), np.random.rand(5, 2)).grid_geometry(
        0.1) is None
