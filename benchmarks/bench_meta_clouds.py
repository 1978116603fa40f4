"""Meta OT for pairs whose supports move and change size: MNIST clouds, sphere, mixtures.

Usage::

    # train one family's model for a wall-clock budget (resumes from the state file)
    python benchmarks/bench_meta_clouds.py --train gmm --encoder attention --seconds 900 \
        --state-dir runs
    # evaluate saved models on held-out pairs (unseen supports; and sizes 2x the training's)
    python benchmarks/bench_meta_clouds.py --evaluate gmm=runs/clouds_gmm_attention.pkl \
        gmm:deepsets=runs/clouds_gmm_deepsets.pkl
    # ... after choosing each model's correction scale on 48 fresh training pairs
    python benchmarks/bench_meta_clouds.py --evaluate gmm10=runs/clouds_gmm10_attention.pkl \
        --calibrate 48

Writes ``benchmarks/results/bench_meta_clouds.{json,md}`` (``--name`` to change) and prints
the tables. Run with ``OMP_NUM_THREADS=1`` on a shared machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from harness import meta_clouds
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", choices=sorted(meta_clouds.FAMILIES))
    parser.add_argument("--encoder", default="attention", choices=["attention", "deepsets"])
    parser.add_argument("--seconds", type=float, default=900.0,
                        help="training seconds (default: %(default)s)")
    parser.add_argument("--unroll-steps", type=int, default=10,
                        help="unroll_steps of the trained model (default: %(default)s)")
    parser.add_argument("--regression-weight", type=float, default=0.0,
                        help="regression_weight of the trained model (default: %(default)s)")
    parser.add_argument("--state-dir", type=Path, default=Path("runs"))
    parser.add_argument("--evaluate", nargs="+", default=[],
                        help="FAMILY[:LABEL]=PATH of saved models to evaluate")
    parser.add_argument("--n-pairs", type=int, default=16)
    parser.add_argument("--n-pot", type=int, default=8)
    parser.add_argument("--calibrate", type=int, default=0, metavar="N",
                        help="calibrate each model's correction scale on N fresh training "
                             "pairs before evaluating (default: no calibration)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="bench_meta_clouds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.train:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        regression = (f"_regression{args.regression_weight:g}" if args.regression_weight
                      else "")
        state = (args.state_dir / f"clouds_{args.train}_{args.encoder}_unroll"
                                  f"{args.unroll_steps}{regression}.pkl")
        meta_clouds.train(args.train, args.encoder, args.seconds, state,
                          log=lambda line: print(line, flush=True),
                          unroll_steps=args.unroll_steps,
                          regression_weight=args.regression_weight)
    if args.evaluate:
        models = dict(item.split("=", 1) for item in args.evaluate)
        payload = meta_clouds.run_evaluation({k: Path(v) for k, v in models.items()},
                                             n_pairs=args.n_pairs, n_pot=args.n_pot,
                                             calibration_pairs=args.calibrate)
        write_results(args.name, payload, payload["table"], args.out)
        print(payload["table"])


if __name__ == "__main__":
    main()
