"""The command line: python -m skmetaot / skmetaot (demo, bench NAME, --help, --device)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from skmetaot.__main__ import BENCHMARKS, main


def test_help_explains_the_commands_to_a_newcomer():
    out = subprocess.run([sys.executable, "-m", "skmetaot", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    for words in ("demo (the default)", "bench NAME", "--device", "examples:"):
        assert words in out.stdout


def test_console_script_is_installed():
    script = shutil.which("skmetaot")
    assert script is not None, "pip install -e . installs the skmetaot console script"
    out = subprocess.run([script, "bench", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    assert all(name in out.stdout for name in BENCHMARKS)


def test_unknown_benchmark_and_bad_steps_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--steps must be a positive integer"):
        main(["demo", "--steps", "0"])
    with pytest.raises(SystemExit, match="--device: device='tpu' is not a valid torch device"):
        main(["bench", "w2", "--device", "tpu"])


def test_demo_trains_prints_the_table_and_saves_the_figure(tmp_path, capsys):
    figure = tmp_path / "demo.png"
    assert main(["--device", "cpu", "demo", "--quick", "--steps", "3",
                 "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "trained 3 steps" in out
    assert "| MNIST | 0.001 | meta |" in out
    assert figure.stat().st_size > 10_000


def test_bench_writes_its_results(tmp_path, capsys):
    assert main(["bench", "sinkhorn", "--quick", "--device", "cpu", "--out",
                 str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "bench_sinkhorn_pot_quick.json").read_text())
    assert payload["machine"]["device"] == "cpu"
    assert (tmp_path / "bench_sinkhorn_pot_quick.md").read_text().count("| float32 |") >= 2
    assert "float64" in capsys.readouterr().out


def test_bench_outside_a_source_checkout_says_where_to_run_it(tmp_path, monkeypatch):
    # An installed package has no benchmarks/ next to it (nor in the working directory).
    import skmetaot.__main__ as cli

    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "skmetaot" / "x.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="run python benchmarks/bench_w2.py from a source "
                                         "checkout"):
        main(["bench", "w2", "--device", "cpu"])
