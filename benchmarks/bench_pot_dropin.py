"""The POT drop-in: skmetaot.pot.sinkhorn against ot.sinkhorn, same calls, same machine.

Usage::

    python benchmarks/bench_pot_dropin.py            # sizes 200, 500, 1000 and a batch of 64
    python benchmarks/bench_pot_dropin.py --quick    # smoke test

Writes ``benchmarks/results/bench_pot_dropin[_quick].{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import pot_dropin
from harness.common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke-test run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    payload = (pot_dropin.run(**pot_dropin.QUICK) if args.quick
               else pot_dropin.run(tuple(args.sizes), args.batch, args.repeats))
    name = "bench_pot_dropin" + ("_quick" if args.quick else "")
    write_results(name, payload, payload["table"], args.out)
    print(payload["table"])


if __name__ == "__main__":
    main()
