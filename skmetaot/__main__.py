"""Command line: ``python -m skmetaot [demo|bench NAME] [--quick] [--device DEVICE]``."""

from __future__ import annotations

import argparse
import sys

BENCHMARKS = ("sinkhorn",)


def _demo(args: argparse.Namespace) -> None:
    from skmetaot._benchmarks import cold_sinkhorn

    print("skmetaot demo: cold batched Sinkhorn vs POT sinkhorn_log on MNIST test pairs "
          f"(eps=1e-2, L1 marginal error, device={args.device})", flush=True)
    payload = cold_sinkhorn.run(64, n_single=8, repeats=1, device=args.device,
                                dtypes=("float32",) if args.quick else ("float32", "float64"))
    print(payload["table"])
    print("ratio = POT seconds per pair / ours; b=64 solves 64 pairs at once.")


def _bench(args: argparse.Namespace) -> None:
    from pathlib import Path

    from skmetaot._benchmarks import cold_sinkhorn
    from skmetaot._benchmarks.common import write_results

    if args.name == "sinkhorn":
        payload = (cold_sinkhorn.run(64, n_single=8, repeats=1, device=args.device)
                   if args.quick else cold_sinkhorn.run(128, device=args.device))
        write_results("bench_sinkhorn" + ("_quick" if args.quick else ""), payload,
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
    demo = sub.add_parser("demo", help="solve MNIST pairs and print the speed table (default)")
    demo.add_argument("--quick", action="store_true", help="float32 only")
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
