"""Bundled colour images (photographs, paintings) for colour transfer, and their pixel clouds."""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from skmetaot.datasets._known_map import as_generator

#: The held-out images: 5 photographs (4 Kodak, 1 scikit-image) and 5 paintings by 5 painters
#: who have no other painting in the set, so no test painter is seen in training. Test pairs must
#: be built only from these images and training pairs only from the other 35.
TEST_IMAGES: tuple[str, ...] = (
    "photo_kodim03",
    "photo_kodim13",
    "photo_kodim21",
    "photo_kodim23",
    "photo_chelsea",
    "painting_hokusai_great_wave",
    "painting_gauguin_te_fare",
    "painting_munch_scream",
    "painting_turner_shipwreck_minotaur",
    "painting_matisse_woman_with_hat",
)

_SPLITS = ("all", "train", "test")

_DESCR = """\
Colour images for colour transfer
---------------------------------

{n_images} RGB images ({n_photos} photographs, {n_paintings} paintings), longest side 128 pixels,
area-averaged from copies of the originals (see the README of
skmetaot/datasets/data/color_images). Split: {n_test} held-out "test" images (TEST_IMAGES) and
{n_train} "train" images; build test pairs only from test images.

Attribution (per-image titles, creators and licences are in the returned Bunch):

- Kodak Lossless True Color Image Suite (Kodak PhotoCD PCD0992), released by Eastman Kodak for
  unrestricted usage (photo_kodim01 ... photo_kodim24).
- scikit-image sample images (astronaut, Hubble eXtreme Deep Field: NASA/ESA, public domain;
  rocket: SpaceX, public domain; chelsea: Stefan van der Walt, coffee: Rachel Michetti, retina:
  Mikael Haggstrom, all CC0; ihc: CMMI, no known copyright restrictions).
- Public-domain paintings by Kandinsky, Picabia, Hokusai, Degas, Gauguin, Monet,
  Toulouse-Lautrec, van Gogh, Munch, Turner and Matisse.
"""


@lru_cache(maxsize=1)
def _read_bundle() -> tuple[tuple[np.ndarray, ...], tuple[dict[str, str], ...]]:
    """The bundled uint8 images (read-only) and the rows of ``images.csv``, in the same order."""
    folder = resources.files("skmetaot.datasets") / "data" / "color_images"
    rows = tuple(csv.DictReader(io.StringIO(
        (folder / "images.csv").read_text(encoding="utf-8"), newline="")))
    with (folder / "color_images.npz").open("rb") as handle, np.load(handle) as bundle:
        order = [str(name) for name in bundle["names"]]
        images = tuple(bundle[name] for name in order)
    csv_names = [row["file"].rsplit(".", 1)[0] for row in rows]
    if order != csv_names:
        raise OSError("the bundled color_images.npz and images.csv list different images")
    for image in images:
        image.setflags(write=False)
    return images, rows


def load_color_images(split: str = "all", as_float: bool = True) -> Bunch:
    """The 45 bundled colour images (31 photographs, 14 paintings), longest side 128 pixels.

    The photographs are the 24 Kodak test images and 7 scikit-image sample images; the paintings
    are 14 public-domain works by 11 painters. See ``DESCR`` and the README of
    ``skmetaot/datasets/data/color_images`` for sources and licences.

    The split is fixed and made of whole images: ``"test"`` is the 10 images of ``TEST_IMAGES``
    (5 photographs and 5 paintings, by painters with no other work in the set) and ``"train"``
    the other 35. Colour-transfer test pairs must be built only from test images
    (and training pairs only from train images), so that no pixel of a test image is seen during
    meta-training.

    Parameters
    ----------
    split : {"all", "train", "test"}, default="all"
    as_float : bool, default=True
        If True the images are float32 in [0, 1] (uint8 values divided by 255), else uint8.

    Returns
    -------
    data : sklearn.utils.Bunch
        With the attributes

        - ``images``: list of ndarray of shape (H, W, 3); the shapes differ between images;
        - ``names``: list of str, e.g. ``"photo_kodim01"``;
        - ``kinds``: list of str, ``"photo"`` or ``"painting"``;
        - ``titles``, ``creators``, ``licences``: lists of str, aligned with ``images``;
        - ``split``: the split asked for;
        - ``DESCR``: a description of the data set with its attribution.

    Examples
    --------
    >>> data = load_color_images(split="test")
    >>> len(data.images), data.names[0], data.kinds[0]
    (10, 'photo_kodim03', 'photo')
    >>> data.images[0].shape, data.images[0].dtype
    ((86, 128, 3), dtype('float32'))
    >>> len(load_color_images(split="train", as_float=False).images)
    35
    """
    if not isinstance(split, str) or split not in _SPLITS:
        raise ValueError(f"split={split!r} is not one of {list(_SPLITS)}")
    if not isinstance(as_float, (bool, np.bool_)):
        raise TypeError(f"as_float must be a bool, got {type(as_float).__name__}")
    images, rows = _read_bundle()
    test = set(TEST_IMAGES)
    keep = [
        i for i, row in enumerate(rows)
        if split == "all" or (row["file"].rsplit(".", 1)[0] in test) == (split == "test")
    ]

    def column(key: str) -> list[str]:
        return [rows[i][key] for i in keep]

    if as_float:
        selected = [images[i].astype(np.float32) / np.float32(255) for i in keep]
    else:
        selected = [images[i].copy() for i in keep]  # copies, so the cache cannot be edited
    kinds = [row["kind"] for row in rows]
    descr = _DESCR.format(
        n_images=len(rows), n_photos=kinds.count("photo"), n_paintings=kinds.count("painting"),
        n_test=len(TEST_IMAGES), n_train=len(rows) - len(TEST_IMAGES),
    )
    return Bunch(
        images=selected,
        names=[row["file"].rsplit(".", 1)[0] for row in (rows[i] for i in keep)],
        kinds=column("kind"),
        titles=column("title"),
        creators=column("creator"),
        licences=column("licence"),
        split=split,
        DESCR=descr,
    )


def image_to_measure(image: Any) -> np.ndarray:
    """The cloud of pixel colours of an image, one point per pixel, in [0, 1]^C.

    Parameters
    ----------
    image : array-like of shape (H, W, C)
        Integer values in [0, 255] (e.g. uint8), divided by 255, or floating values in [0, 1],
        kept as they are.

    Returns
    -------
    ndarray of shape (H * W, C), dtype float32
        The pixels in row-major order, as uniformly weighted points of a colour measure.

    Raises
    ------
    TypeError
        If the image is not numeric (strings, objects, booleans, complex numbers).
    ValueError
        If it is not 3-D, has no pixels, or has values outside [0, 255] (integers), outside
        [0, 1] (floats) or that are not finite.

    Examples
    --------
    >>> image = np.zeros((2, 3, 3), dtype=np.uint8)
    >>> image[0, 0] = 255
    >>> X = image_to_measure(image)
    >>> X.shape, X.dtype
    ((6, 3), dtype('float32'))
    >>> X[:2].tolist()
    [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    """
    try:
        array = np.asarray(image)
    except (TypeError, ValueError) as error:
        raise TypeError(f"image must be a numeric array, got {type(image).__name__}") from error
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            f"image must hold integers in [0, 255] or floats in [0, 1], got dtype {array.dtype}"
        )
    if array.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"image has no pixels (shape {array.shape})")
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError("an integer image must have values in [0, 255]")
        points = array.astype(np.float32) / np.float32(255)
    else:
        if not np.all(np.isfinite(array)):
            raise ValueError("image has NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"a floating image has values outside [0, 1] (got [{array.min()}, "
                f"{array.max()}]); divide 0-255 floats by 255 first"
            )
        points = array.astype(np.float32)
    return points.reshape(-1, array.shape[2])


def color_variations(images: Any, n_variations: int, random_state: Any = None) -> list:
    """Random recolourings of images, to widen a small training set of colour measures.

    Each variation permutes the colour channels at random, applies a random gamma per channel
    (in [0.6, 1.6]) and scales the saturation by a random factor (in [0.6, 1.4]); values stay
    in [0, 1]. A meta model trained on 35 images sees 35 palettes; with variations it sees
    many, and generalises better to held-out images. Build training pairs from training
    images only, so test images stay unseen.

    Parameters
    ----------
    images : sequence of arrays (H, W, 3), floats in [0, 1]
    n_variations : int
        Variations per image, besides the image itself.
    random_state : int, Generator or None

    Returns
    -------
    list of ndarray
        The images followed by their variations: ``len(images) * (1 + n_variations)`` arrays,
        float32.

    Examples
    --------
    >>> images = [np.full((2, 2, 3), 0.5, dtype=np.float32)]
    >>> out = color_variations(images, 3, random_state=0)
    >>> len(out), out[1].shape, bool(out[1].min() >= 0 and out[1].max() <= 1)
    (4, (2, 2, 3), True)
    """
    if isinstance(n_variations, bool) or not isinstance(n_variations, (int, np.integer)) or (
            n_variations < 0):
        raise ValueError(f"n_variations must be a non-negative integer, got {n_variations!r}")
    rng = as_generator(random_state)
    originals = [image_to_measure(image).reshape(np.shape(image)) for image in images]
    out = list(originals)
    for image in originals:
        if image.shape[-1] != 3:
            raise ValueError(f"color_variations needs RGB images, got shape {image.shape}")
        for _ in range(n_variations):
            varied = image[..., rng.permutation(3)] ** rng.uniform(0.6, 1.6, size=3)
            gray = varied.mean(-1, keepdims=True)
            varied = gray + rng.uniform(0.6, 1.4) * (varied - gray)
            out.append(np.clip(varied, 0.0, 1.0).astype(np.float32))
    return out
