"""NeuralW2Transport at every scale: relative map error on an exact map, data scaled by s.

The exact map is ``T(x) = x / 2 + 1`` from N(0, I_2) to N(1, I_2 / 4); both samples are
multiplied by ``s`` (so the map becomes ``x / 2 + s``), the same estimator is fitted at each
scale, and the error of ``transform`` on 1,000 held-out points is
``|T_hat(X) - T(X)|_F / |T(X)|_F``. A W2 map commutes with a common scaling of its measures,
so a scale-free estimator gives the same error at every scale.

Usage::

    python benchmarks/bench_w2_scale.py                 # 300 steps, about 1 minute on one core
    python benchmarks/bench_w2_scale.py --steps 1000

Writes ``benchmarks/results/bench_w2_scale[_suffix].{json,md}`` and prints the table. Run it
with ``PYTHONPATH`` pointing at another checkout to measure that version.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from harness.common import machine_info, markdown_table, write_results

from skmetaot import NeuralW2Transport

SCALES = (1e-6, 1e-3, 1.0, 1e3, 1e6)
COLUMNS = ["scale", "relative map error %", "ratio to scale 1", "recoveries", "outcome"]


def measure(steps: int, seed: int) -> list[dict]:
    """One fit per scale, same seed and steps; the error of each and its ratio to scale 1."""
    rng = np.random.default_rng(seed)
    source, target = rng.normal(size=(2048, 2)), 0.5 * rng.normal(size=(2048, 2)) + 1.0
    test = rng.normal(size=(1000, 2))
    rows = []
    for scale in SCALES:
        est = NeuralW2Transport(max_iter=steps, batch_size=256, pretrain_iter=200,
                                random_state=seed, device="cpu")
        outcome = "ok"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                est.fit((scale * source, scale * target))
            exact = scale * (0.5 * test + 1.0)
            error = float(np.linalg.norm(est.transform(scale * test) - exact)
                          / np.linalg.norm(exact))
            if caught:
                outcome = f"{len(caught)} warnings"
        except Exception as failure:  # the table records what a user would have seen
            error, outcome = float("nan"), f"{type(failure).__name__}: {str(failure)[:60]}"
        history = getattr(est, "_history", None)
        rows.append({"scale": scale, "relative map error %": 100 * error,
                     "recoveries": len(history.recoveries) if history else "", "outcome": outcome})
        print(f"scale {scale:8.0e}: {100 * error:10.4f} %  {outcome}", flush=True)
    unit = next(row["relative map error %"] for row in rows if row["scale"] == 1.0)
    for row in rows:
        row["ratio to scale 1"] = row["relative map error %"] / unit
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suffix", default="", help="appended to the results file name")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.steps, args.seed)
    table = markdown_table(rows, COLUMNS)
    payload = {"machine": machine_info(torch.device("cpu")), "seed": args.seed,
               "steps": args.steps, "rows": rows, "table": table,
               "notes": [f"NeuralW2Transport(max_iter={args.steps}, batch_size=256, "
                         "pretrain_iter=200), defaults otherwise; T(x) = x / 2 + 1 scaled by s; "
                         "error |T_hat - T|_F / |T|_F on 1,000 held-out points."]}
    write_results("bench_w2_scale" + args.suffix, payload, table, args.out)
    print(table)


if __name__ == "__main__":
    main()
