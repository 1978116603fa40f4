"""Bundle the Mix3toMix10 W2 benchmark arrays into the package (one-off, run by a maintainer).

Reads ``shared/data/w2bench/mix3tomix10_D{D}.npz`` (see the README there) and writes
``skmetaot/datasets/data/w2bench/mix3tomix10.npz`` with every key prefixed by ``D{D}/``.
The test set (``x_test``, ``Tx_test``, ``x_test_component``) is left out on purpose: the library
regenerates ``x_test`` from its documented seed and computes ``Tx_test`` with its own map, and the
tests check both against the shared files.

Usage::

    python benchmarks/tools/bundle_w2bench.py [--shared /path/to/shared]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

DIMS = (2, 4, 8, 16, 32, 64, 128)
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "skmetaot" / "datasets" / "data" / "w2bench" / "mix3tomix10.npz"
SCALARS_AND_ARRAYS = (
    "dim", "centers", "maps", "std", "hidden_layer_sizes", "rank", "strong_convexity",
    "celu_alpha", "std_shift", "std_var", "std_scale", "var_target", "var_source", "cost",
    "linear_fwd_weight", "linear_fwd_bias",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    folder = args.shared / "data" / "w2bench"
    arrays: dict[str, np.ndarray] = {}
    for dim in DIMS:
        with np.load(folder / f"mix3tomix10_D{dim}.npz") as source:
            keys = list(SCALARS_AND_ARRAYS)
            keys += [k for k in source.files if k.startswith(("psi1.", "psi2."))]
            for key in keys:
                arrays[f"D{dim}/{key}"] = source[key]
            if int(source["dim"]) != dim:
                raise ValueError(f"{folder}/mix3tomix10_D{dim}.npz has dim={source['dim']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes, {len(arrays)} arrays, sha256 {digest})")


if __name__ == "__main__":
    main()
