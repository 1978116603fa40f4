"""B5: domain adaptation, MNIST -> scikit-learn's digits and rotated moons, ours, POT's, skada's.

Usage::

    python benchmarks/bench_domain_adaptation.py            # 5 splits (about 10 minutes, 1 core)
    python benchmarks/bench_domain_adaptation.py --quick    # smoke test, under a minute
    python benchmarks/bench_domain_adaptation.py --features lda --suffix _lda

Writes ``benchmarks/results/bench_domain_adaptation[_quick][suffix].{json,md}`` and prints the
tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import domain_adaptation
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--splits", type=int, default=5, help="random target splits")
    parser.add_argument("--n-source", type=int, default=2000,
                        help="source points each map is fitted on")
    parser.add_argument("--max-iter", type=int, default=1000, help="training steps of our maps")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--sinkhorn-regs", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--features", default="mlp", choices=["mlp", "lda", "pca"])
    parser.add_argument("--n-components", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moons-angles", type=float, nargs="+", default=[15.0, 30.0, 45.0],
                        help="rotations (degrees) of the rotated-moons family")
    parser.add_argument("--moons-seeds", type=int, default=2, help="draws per angle")
    parser.add_argument("--moons-max-iter", type=int, default=300,
                        help="training steps of our W2 maps on the moons")
    parser.add_argument("--suffix", default="", help="appended to the results file name")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        payload = domain_adaptation.run(**domain_adaptation.QUICK, features=args.features,
                                        n_components=args.n_components, seed=args.seed,
                                        device=args.device)
    else:
        payload = domain_adaptation.run(
            args.splits, args.n_source, args.max_iter, tuple(args.learning_rates),
            tuple(args.sinkhorn_regs), args.features, args.n_components, seed=args.seed,
            device=args.device, moons_angles=tuple(args.moons_angles),
            moons_seeds=args.moons_seeds, moons_max_iter=args.moons_max_iter)
    name = "bench_domain_adaptation" + ("_quick" if args.quick else "") + args.suffix
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
