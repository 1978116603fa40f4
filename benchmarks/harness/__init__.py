"""The benchmarks' harness: one module per benchmark of benchmarks.md, plus shared plumbing.

Not part of the installed package. The ``benchmarks/bench_*.py`` scripts import it as
``harness`` (running ``python benchmarks/bench_X.py`` puts ``benchmarks/`` first on the path);
tests put ``benchmarks/`` on the path in ``tests/conftest.py``.
"""
