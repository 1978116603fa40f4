"""B1 (cold part): skmetaot's batched Sinkhorn vs POT ``sinkhorn_log`` on MNIST test pairs.

Usage::

    python benchmarks/bench_sinkhorn.py           # full: 128 pairs, float32 and float64
    python benchmarks/bench_sinkhorn.py --quick   # smoke test, under 2 minutes

Writes ``benchmarks/results/bench_sinkhorn.{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skmetaot._benchmarks import cold_sinkhorn
from skmetaot._benchmarks.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--pairs", type=int, default=128, help="test pairs (full mode)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        payload = cold_sinkhorn.run(64, n_single=8, repeats=1, seed=args.seed,
                                    device=args.device)
    else:
        payload = cold_sinkhorn.run(args.pairs, seed=args.seed, device=args.device)
    name = "bench_sinkhorn" + ("_quick" if args.quick else "")
    if args.device != "cpu":
        name += f"_{args.device.split(':')[0]}"
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
