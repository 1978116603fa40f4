"""Command line: ``python -m skmetaot`` (or ``skmetaot``) with ``demo`` and ``bench NAME``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Benchmark name -> what it measures (shown by ``--help``).
BENCHMARKS = {
    "sinkhorn": "B1 cold solver: our batched Sinkhorn vs POT on MNIST pairs (bench_sinkhorn_pot;"
                " benchmarks/bench_sinkhorn.py adds OTT-JAX and GeomLoss)",
    "meta_sinkhorn": "B1/B2: Meta OT initialisation vs zeros and Gaussian (MNIST, sphere)",
    "w2": "B3: neural W2 maps (Amos 2023, W2GN, Makkuva) on the W2 benchmark and Gaussians",
    "color_transfer": "B4: Meta ICNN colour transfer on held-out images vs W2GN",
    "domain_adaptation": "B5: digits and rotated-moons domain adaptation, ours in ot.da form and "
                         "in skada pipelines vs POT's ot.da and skada's methods",
    "pot_dropin": "skmetaot.pot.sinkhorn vs ot.sinkhorn: same calls, plans, iterations, time",
    "scale": "streamed training memory at 1x/10x/100x pairs, 1 vs 2 processes, and refine of "
             "10,000 MNIST pairs vs batches of 64 (CPU; writes bench_scale_training and "
             "bench_scale_refine)",
}
#: Benchmark names whose module in benchmarks/harness is named otherwise.
BENCHMARK_MODULES = {"sinkhorn": "cold_sinkhorn", "scale": "scale_training"}

DESCRIPTION = """\
skmetaot learns to solve optimal transport problems that come from one distribution: it
predicts the solution of a new problem in one network pass, then refines it with a
warm-started solver.

commands:
  demo (the default)  train Meta OT on pairs of MNIST digits (the bundled test set), then solve
                      unseen pairs with Sinkhorn from zeros, from the Gaussian initialisation
                      and from the Meta OT prediction. Prints how many iterations and seconds
                      each needs and saves their convergence curves as a figure. About a
                      minute on 2 CPU cores (--quick: seconds).
  bench NAME          in a source checkout (the benchmarks are not installed): run a
                      benchmark of benchmarks.md, print its table and write it to
                      benchmarks/results/bench_NAME.{md,json} (--quick: a smoke-test size);
                      python benchmarks/bench_NAME.py runs it with all its options.
"""
EPILOG = """\
examples:
  python -m skmetaot                      # the demo, on CUDA when present
  python -m skmetaot demo --quick --figure demo.png
  python -m skmetaot bench sinkhorn --quick --device cpu
  python -m skmetaot bench --help         # the benchmark names and what each measures
"""


def _harness(name: str, benchmark: str):
    """The module ``harness.<name>`` of a source checkout's ``benchmarks/`` folder.

    The benchmarks are not part of the installed package: they are found next to the package
    (an editable install) or in the working directory.
    """
    from importlib import import_module

    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        folder = root / "benchmarks"
        if (folder / "harness" / "common.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return import_module(f"harness.{name}")
    raise SystemExit(f"skmetaot bench {benchmark}: the benchmarks are not part of the installed "
                     f"package; run python benchmarks/bench_{benchmark}.py from a source checkout "
                     "of skmetaot")


def _demo(args: argparse.Namespace) -> None:
    from skmetaot._demo import run_demo

    run_demo(args.device, quick=args.quick, steps=args.steps, figure=args.figure)


def _bench(args: argparse.Namespace) -> None:
    write_results = _harness("common", args.name).write_results
    # Each benchmark is imported only when asked for.
    module = _harness(BENCHMARK_MODULES.get(args.name, args.name), args.name)
    for name, payload in module.run_benchmark(args.quick, device=args.device).items():
        write_results(name, payload, payload["table"], Path(args.out))
        print(payload["table"])


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    device_help = "torch device: auto (CUDA when present, the default), cpu, cuda, cuda:1"
    parser = argparse.ArgumentParser(prog="skmetaot", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=formatter)
    parser.add_argument("--device", default="auto", help=device_help)
    # Without a command the demo runs with its defaults (a command's own defaults win).
    parser.set_defaults(quick=False, steps=None, figure="skmetaot_demo.png")
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}")
    demo = sub.add_parser("demo", help="train Meta OT on MNIST and compare Sinkhorn starts "
                          "(the default)", description=DESCRIPTION, formatter_class=formatter)
    demo.add_argument("--quick", action="store_true", help="a smaller model, shorter training")
    demo.add_argument("--steps", type=int, default=None,
                      help="training steps (default: 2000, or 300 with --quick)")
    demo.add_argument("--figure", default="skmetaot_demo.png",
                      help="where to save the convergence curves (default: %(default)s)")
    names = "\n".join(f"  {name:<18}  {what}" for name, what in BENCHMARKS.items())
    bench = sub.add_parser("bench", help="run a benchmark and write benchmarks/results",
                           description=f"benchmarks:\n{names}", formatter_class=formatter)
    bench.add_argument("name", choices=list(BENCHMARKS), metavar="NAME",
                       help="one of: " + ", ".join(BENCHMARKS))
    bench.add_argument("--quick", action="store_true", help="smoke-test size")
    bench.add_argument("--out", default="benchmarks/results",
                       help="results folder (default: %(default)s)")
    for subparser in (demo, bench):
        # SUPPRESS keeps a --device given before the command.
        subparser.add_argument("--device", default=argparse.SUPPRESS, help=device_help)
    return parser


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

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    ...     main(["bench", "--help"])
    >>> "domain_adaptation" in out.getvalue()
    True
    """
    args = _parser().parse_args(argv)
    from skmetaot._backend import resolve_device

    try:
        args.device = str(resolve_device(args.device))  # "auto" -> cuda or cpu, for every runner
    except ValueError as error:
        raise SystemExit(f"skmetaot: --device: {error}") from error
    if args.command == "bench":
        _bench(args)
    else:
        if args.steps is not None and args.steps < 1:
            raise SystemExit("skmetaot demo: --steps must be a positive integer")
        _demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
