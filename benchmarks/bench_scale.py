"""Scale: streamed training memory and throughput, processes, and refining 10,000 pairs.

Usage::

    python benchmarks/bench_scale.py                      # both sections, full size
    python benchmarks/bench_scale.py --quick              # smoke test (a minute or two)
    python benchmarks/bench_scale.py --section training   # or: --section refine

* ``training``: peak memory and pairs/s of streamed training (a ``PairSampler``) at 1x, 10x and
  100x the number of pairs, against the same pairs built as an array in memory; and training
  throughput with 1 process (1 and 2 threads) and 2 processes under ``torchrun``.
* ``refine``: refining 10,000 MNIST pairs with ``refine`` vs by hand in batches of 64 (time and
  peak memory).

Every variant runs in fresh processes (peak resident memory of its own); refinement uses the
environment's ``OMP_NUM_THREADS`` (1 when unset). Writes
``benchmarks/results/bench_scale_{training,refine}[_quick].{json,md}`` and prints the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import scale, scale_training
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--section", choices=["all", "training", "refine"], default="all")
    parser.add_argument("--pairs", type=int, default=None, help="test pairs to refine")
    parser.add_argument("--repeats", type=int, default=None, help="processes per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    if args.section in ("all", "training"):
        config = dict(scale_training.TRAINING_QUICK if args.quick else {})
        if args.repeats is not None:
            config["repeats"] = args.repeats
        payload = scale_training.run_training(**config)
        write_results("bench_scale_training" + suffix, payload, payload["table"], args.out)
        print(payload["table"])
    if args.section in ("all", "refine"):
        config = dict(scale.REFINE_QUICK if args.quick else scale.REFINE_FULL)
        if args.pairs is not None:
            config["n_pairs"] = args.pairs
        if args.repeats is not None:
            config["repeats"] = args.repeats
        payload = scale.run_refine(**config, seed=args.seed)
        write_results("bench_scale_refine" + suffix, payload, payload["table"], args.out)
        print(payload["table"])


if __name__ == "__main__":
    main()
