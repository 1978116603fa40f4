"""B1 and B2: Meta OT initialisation vs zeros and Gaussian on MNIST and on the sphere.

Usage::

    python benchmarks/bench_meta_sinkhorn.py           # CPU: MNIST ~15 min, sphere ~45 min
    python benchmarks/bench_meta_sinkhorn.py --quick   # smoke test

Writes ``benchmarks/results/bench_meta_sinkhorn.{json,md}`` (``--problems mnist`` alone:
``bench_meta_sinkhorn_mnist``; ``sphere`` alone: ``bench_meta_sinkhorn_sphere``) and prints the
tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skmetaot._benchmarks import meta_sinkhorn
from skmetaot._benchmarks.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--problems", nargs="+", default=["mnist", "sphere"],
                        choices=["mnist", "sphere"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    payload = meta_sinkhorn.run(args.quick, seed=args.seed, problems=tuple(args.problems))
    name = "bench_meta_sinkhorn"
    if sorted(args.problems) != ["mnist", "sphere"]:
        name += "_" + "_".join(args.problems)  # a partial run keeps the full run's file
    name += "_quick" if args.quick else ""
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
