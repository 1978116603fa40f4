"""Bundle downsampled colour images into the package (one-off, run by a maintainer).

Reads ``shared/data/color_images/color_images_256.npz`` (45 uint8 RGB images, longest side 256)
and its attribution table ``images.csv``, and writes into
``skmetaot/datasets/data/color_images/``:

- ``color_images.npz``: every image area-averaged so that its longest side is 128 pixels, uint8,
  ``np.savez_compressed``, one key per image (the file stem, e.g. ``photo_kodim01``) plus
  ``names``, a fixed-width unicode array giving the order of ``images.csv`` (no pickles);
- ``images.csv``: the attribution columns of the shared table, in the same order.

The downsampling is exact area averaging done in numpy (each output pixel is the mean of the input
pixels it covers, fractional pixels weighted by their covered area), so the result does not depend
on whether or which version of Pillow is installed.

Usage::

    python benchmarks/tools/bundle_color_images.py [--shared /path/to/shared/data/color_images]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "skmetaot" / "datasets" / "data" / "color_images"
LONGEST_SIDE = 128
CSV_COLUMNS = (
    "file", "kind", "title", "creator", "date", "source", "source_commit", "source_path",
    "licence",
)


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix whose row i averages the input cells covered by output cell i."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    cells = np.arange(n_in + 1, dtype=np.float64)
    # Overlap of output cell [e_i, e_{i+1}] with input cell [j, j+1].
    low = np.maximum(edges[:-1, None], cells[None, :-1])
    high = np.minimum(edges[1:, None], cells[None, 1:])
    overlap = np.clip(high - low, 0.0, None)
    return overlap / overlap.sum(1, keepdims=True)


def downsample(image: np.ndarray, longest_side: int = LONGEST_SIDE) -> np.ndarray:
    """Area-average a uint8 (H, W, C) image so that max(H, W) becomes ``longest_side``."""
    height, width = image.shape[:2]
    scale = longest_side / max(height, width)
    if scale > 1:
        raise ValueError(f"image of shape {image.shape} is smaller than {longest_side} pixels")
    # Round half up, as Pillow's thumbnail does, so 171 -> 85.5 -> 86 rows.
    out_h = max(1, int(np.floor(height * scale + 0.5)))
    out_w = max(1, int(np.floor(width * scale + 0.5)))
    rows, cols = area_weights(height, out_h), area_weights(width, out_w)
    pixels = np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)
    return np.clip(np.floor(pixels + 0.5), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data"
                        / "color_images", help="folder with color_images_256.npz and images.csv")
    args = parser.parse_args()

    with open(args.shared / "images.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [Path(row["file"]).stem for row in rows]
    arrays: dict[str, np.ndarray] = {}
    with np.load(args.shared / "color_images_256.npz") as source:
        if sorted(source.files) != sorted(names):
            raise ValueError("the images of color_images_256.npz and of images.csv differ")
        for name in names:
            image = source[name]
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"{name}: expected uint8 (H, W, 3), got {image.dtype} "
                                 f"{image.shape}")
            arrays[name] = downsample(image)
    if "names" in arrays:
        raise ValueError("an image may not be called 'names'")
    arrays["names"] = np.array(names, dtype=f"<U{max(map(len, names))}")

    OUT.mkdir(parents=True, exist_ok=True)
    npz = OUT / "color_images.npz"
    np.savez_compressed(npz, **arrays)
    with open(OUT / "images.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: row[key] for key in CSV_COLUMNS} for row in rows)
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    print(f"wrote {npz} ({npz.stat().st_size:,} bytes, {len(names)} images, sha256 {digest})")
    print(f"wrote {OUT / 'images.csv'}")


if __name__ == "__main__":
    main()
