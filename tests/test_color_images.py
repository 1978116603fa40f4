"""Tests of the bundled colour images, their fixed split and ``image_to_measure``."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from skmetaot.datasets import image_to_measure, load_color_images
from skmetaot.datasets._color_images import TEST_IMAGES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "color_images"
BUNDLE = resources.files("skmetaot.datasets") / "data" / "color_images"


@pytest.fixture(scope="module")
def everything():
    return load_color_images()


def test_all_images_with_aligned_metadata(everything):
    assert everything.split == "all"
    assert len(everything.images) == 45
    assert len(set(everything.names)) == 45
    for key in ("names", "kinds", "titles", "creators", "licences"):
        assert len(everything[key]) == 45, key
        assert all(isinstance(v, str) and v for v in everything[key]), key
    assert everything.kinds.count("photo") == 31
    assert everything.kinds.count("painting") == 14
    # The metadata belong to the image of the same index, not just to the same list length.
    for name, kind in zip(everything.names, everything.kinds, strict=True):
        assert name.startswith(kind + "_")
    i = everything.names.index("painting_munch_scream")
    assert (everything.titles[i], everything.creators[i]) == ("The Scream", "Edvard Munch")
    assert everything.images[i].shape == (128, 101, 3)


def test_float_images(everything):
    for name, image in zip(everything.names, everything.images, strict=True):
        assert image.ndim == 3 and image.shape[2] == 3, name
        assert max(image.shape[:2]) == 128, name
        assert image.dtype == np.float32, name
        assert image.min() >= 0 and image.max() <= 1, name
        # Real photographs, not blank arrays.
        assert image.std() > 0.02, name


def test_uint8_mode_matches_float(everything):
    raw = load_color_images(as_float=False)
    assert raw.names == everything.names
    for image, floats in zip(raw.images, everything.images, strict=True):
        assert image.dtype == np.uint8
        np.testing.assert_allclose(image / 255.0, floats, atol=1e-6)
    # Returned arrays are copies: editing one must not change the next load.
    raw.images[0][...] = 0
    assert load_color_images(as_float=False).images[0].max() > 0


def test_split_is_fixed_disjoint_and_covers_everything(everything):
    train, test = load_color_images("train"), load_color_images("test")
    assert (train.split, test.split) == ("train", "test")
    assert len(train.images) == 35 and len(test.images) == 10
    assert len(TEST_IMAGES) == len(set(TEST_IMAGES)) == 10
    assert set(TEST_IMAGES) <= set(everything.names)
    assert set(test.names) == set(TEST_IMAGES)
    assert set(train.names).isdisjoint(test.names)
    assert set(train.names) | set(test.names) == set(everything.names)
    assert test.kinds.count("photo") == 5 and test.kinds.count("painting") == 5
    # No painter of a test painting has a painting in the training split.
    test_painters = {c for c, k in zip(test.creators, test.kinds, strict=True) if k == "painting"}
    train_painters = {c for c, k in zip(train.creators, train.kinds, strict=True)
                      if k == "painting"}
    assert len(test_painters) == 5 and test_painters.isdisjoint(train_painters)
    for split in (train, test):
        for name, image in zip(split.names, split.images, strict=True):
            np.testing.assert_array_equal(image, everything.images[everything.names.index(name)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_color_images("validation")
    with pytest.raises(TypeError, match="as_float"):
        load_color_images(as_float="yes")


def test_attribution_in_descr_and_readme(everything):
    for text in (everything.DESCR, (BUNDLE / "README.md").read_text(encoding="utf-8")):
        for needle in ("Kodak", "unrestricted", "scikit-image", "public domain", "CC0",
                       "van Gogh", "Hokusai"):
            assert needle in text, needle
    readme = (BUNDLE / "README.md").read_text(encoding="utf-8")
    assert "load_color_images" in readme and "bundle_color_images.py" in readme
    assert all(everything.licences)
    assert "Eastman Kodak" in everything.licences[everything.names.index("photo_kodim01")]


def test_bundle_is_compact_and_has_no_pickles():
    npz = BUNDLE / "color_images.npz"
    assert npz.stat().st_size < 2 * 1024 * 1024  # type: ignore[attr-defined]
    with npz.open("rb") as handle, np.load(handle, allow_pickle=False) as bundle:
        assert bundle["names"].dtype.kind == "U"
        assert all(bundle[name].dtype == np.uint8 for name in bundle["names"])
    with (BUNDLE / "images.csv").open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["file", "kind", "title", "creator", "date", "source", "source_commit",
                      "source_path", "licence"]


def _area_halve(image: np.ndarray) -> np.ndarray:
    """Mean of the 2 x 2 blocks of an image with even sides, rounded to uint8."""
    h, w, c = image.shape
    blocks = image.astype(np.float64).reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))
    return np.floor(blocks + 0.5).astype(np.uint8)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared colour images are not available")
def test_bundle_agrees_with_shared_originals():
    raw = load_color_images(as_float=False)
    with np.load(SHARED / "color_images_256.npz") as originals:
        assert sorted(originals.files) == sorted(raw.names)
        n_exact = 0
        for name, small in zip(raw.names, raw.images, strict=True):
            big = originals[name]
            assert max(big.shape[:2]) == 256
            assert small.shape[:2] == tuple(int(np.floor(s / 2 + 0.5)) for s in big.shape[:2])
            # Area averaging preserves the mean colour up to the uint8 rounding.
            mean_gap = np.abs(small.mean((0, 1)) - big.mean((0, 1))).max()
            assert mean_gap < 1.0, (name, mean_gap)
            if big.shape[0] % 2 == 0 and big.shape[1] % 2 == 0:
                # An exact factor of 2: each pixel is the mean of a 2 x 2 block.
                gap = np.abs(_area_halve(big).astype(int) - small).max()
                assert gap <= 1, (name, gap)
                n_exact += 1
        assert n_exact >= 10


def test_image_to_measure_uint8_and_float(everything):
    image = everything.images[0]
    points = image_to_measure(image)
    assert points.shape == (image.shape[0] * image.shape[1], 3)
    assert points.dtype == np.float32
    np.testing.assert_array_equal(points[image.shape[1]], image[1, 0])  # row-major order
    raw = load_color_images(as_float=False).images[0]
    np.testing.assert_allclose(image_to_measure(raw), points, atol=1e-6)
    assert image_to_measure(raw).max() <= 1.0
    # Integers from a nested list and float64 values are accepted; C need not be 3.
    from_list = image_to_measure([[[0, 255]], [[51, 0]]])
    np.testing.assert_allclose(from_list, [[0.0, 1.0], [0.2, 0.0]], rtol=1e-6)
    doubles = np.full((4, 5, 1), 0.5)
    assert image_to_measure(doubles).shape == (20, 1)


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((4, 4)), ValueError, "shape"),
        (np.zeros((2, 4, 4, 3)), ValueError, "shape"),
        (np.zeros((0, 4, 3)), ValueError, "no pixels"),
        (np.full((2, 2, 3), np.nan), ValueError, "NaN"),
        (np.full((2, 2, 3), np.inf), ValueError, "infinite"),
        (np.full((2, 2, 3), 1.5), ValueError, r"\[0, 1\]"),
        (np.full((2, 2, 3), -0.1), ValueError, r"\[0, 1\]"),
        (np.full((2, 2, 3), 300), ValueError, r"\[0, 255\]"),
        (np.full((2, 2, 3), -1), ValueError, r"\[0, 255\]"),
        (np.full((2, 2, 3), "a"), TypeError, "dtype"),
        (np.ones((2, 2, 3), dtype=bool), TypeError, "dtype"),
        (np.ones((2, 2, 3), dtype=complex), TypeError, "dtype"),
        ({"pixels": 1}, TypeError, "dtype"),
    ],
)
def test_image_to_measure_errors(image, error, match):
    with pytest.raises(error, match=match):
        image_to_measure(image)
