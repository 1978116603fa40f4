"""Command line: ``python -m skmetaot [demo|bench NAME] [--quick] [--device DEVICE]``."""

from __future__ import annotations

import argparse
import sys

BENCHMARKS = ("sinkhorn", "meta_sinkhorn", "w2", "color_transfer")


def _demo(args: argparse.Namespace) -> None:
    from skmetaot._benchmarks import meta_sinkhorn
    from skmetaot._benchmarks.common import markdown_table
    from skmetaot.datasets import make_mnist_pairs

    print("skmetaot demo: train Meta OT on MNIST pairs (images 0-7999 of the bundled test set), "
          "then solve unseen pairs (images 8000-9999) from zeros, Gaussian and Meta OT "
          f"initialisations (eps=1e-2, L1 marginal error, device={args.device})", flush=True)
    train_pairs = make_mnist_pairs(4096, split="train", random_state=0, dtype="float32")
    test_pairs = make_mnist_pairs(32, split="test", random_state=1, dtype="float32")
    est = meta_sinkhorn.demo_estimator(device=args.device, quick=args.quick)
    out = meta_sinkhorn.run_problem("MNIST", est, train_pairs, test_pairs,
                                    n_single=16 if args.quick else 32, pot=False)
    print(f"trained {est.n_iter_} steps in {out['train']['seconds']:.0f} s")
    print(markdown_table(out["inits"], meta_sinkhorn.INIT_COLUMNS))
    print(markdown_table(out["prediction"], meta_sinkhorn.PRED_COLUMNS))
    print("Full benchmarks: python -m skmetaot bench meta_sinkhorn | sinkhorn")


def _bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from skmetaot._benchmarks import cold_sinkhorn, color_transfer, meta_sinkhorn, w2
    from skmetaot._benchmarks.common import write_results

    runners = {
        "meta_sinkhorn": lambda: meta_sinkhorn.run(args.quick),
        "sinkhorn": lambda: (cold_sinkhorn.run(64, n_single=8, repeats=1, device=args.device)
                             if args.quick else cold_sinkhorn.run(128, device=args.device)),
        "w2": lambda: w2.run(**(w2.QUICK if args.quick else {}), device=args.device),
        "color_transfer": lambda: color_transfer.run(
            **(color_transfer.QUICK if args.quick else {}), device=args.device),
    }
    payload = runners[args.name]()
    write_results(f"bench_{args.name}" + ("_quick" if args.quick else ""), payload,
                  payload["table"], Path(args.out))
    print(payload["table"])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m skmetaot`` and the ``skmetaot`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(
        prog="skmetaot",
        description="Amortized optimal transport. Without a command, runs the demo.",
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train Meta OT on MNIST and print the speed-up table "
                                       "(default)")
    demo.add_argument("--quick", action="store_true", help="a smaller, faster model")
    bench = sub.add_parser("bench", help="run a benchmark and write benchmarks/results")
    bench.add_argument("name", choices=BENCHMARKS)
    bench.add_argument("--quick", action="store_true", help="smoke-test size")
    bench.add_argument("--out", default="benchmarks/results", help="results folder")
    args = parser.parse_args(argv)
    if args.command == "bench":
        _bench(args)
    else:
        args.quick = getattr(args, "quick", False)
        _demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
