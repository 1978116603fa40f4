"""The command line answers --help without loading torch, and the docs list its benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from skmetaot.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]


def test_help_imports_neither_torch_nor_pot():
    probe = ("import sys, contextlib, io\n"
             "from skmetaot.__main__ import main\n"
             "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
             "    main(['--help'])\n"
             "print(sorted({'torch', 'ot', 'sklearn'} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_readme_and_install_page_list_the_clis_benchmarks():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"runs a benchmark \(([^)]*)\)", readme.replace("\n", " "))
    assert listed is not None
    assert re.findall(r"`(\w+)`", listed.group(1)) == list(BENCHMARKS)
    install = (ROOT / "doc" / "install.rst").read_text(encoding="utf-8")
    assert ".. include:: generated/benchmarks.rst.inc" in install  # written from BENCHMARKS
