"""The README's commands work as written, on tiny settings, with only shipped files (#14 item 12).

Every ``bash`` block of the README is read line by line: ``make`` targets must exist in the Makefile (the quick start
is exactly ``make demo`` and ``make test``); every ``kappascope`` command runs through :func:`core.cli.main` with
tiny-run flags appended (argparse keeps the last value of a repeated option), ``serve`` as ``--dry-run``; any path a
command reads must exist in the checkout. The ``python`` block runs with the sizes scaled down by explicit
substitutions (each must apply, so the test notices when the README changes).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from core.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
TINY = ["--levels", "2", "--steps-per-level", "1", "--chains", "2", "--final-denoise", "none", "--quiet"]
PYTHON_SUBSTITUTIONS = {"npix=120": "npix=20", "num_levels=60": "num_levels=2", "steps_per_level=10": "steps_per_level=1",
                        "num_chains=16": "num_chains=2"}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            code = line.split("#", 1)[0].strip()
            if code:
                lines.append(code)
    return lines


def test_quick_start_is_two_make_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


def test_readme_uses_no_path_outside_the_project() -> None:
    assert "../shared" not in README and "shared/data" not in README


KAPPASCOPE = [c for c in _commands() if shlex.split(c)[0].endswith("kappascope")]


def test_readme_has_kappascope_commands() -> None:
    assert any(" sample " in f" {c} " and "--cosmos" in c for c in KAPPASCOPE)
    assert any(" serve" in c for c in KAPPASCOPE)


@pytest.mark.parametrize("command", KAPPASCOPE)
def test_readme_command_runs(command: str, tmp_path, capsys) -> None:
    argv = shlex.split(command)[1:]
    if argv[0] == "serve":
        assert main([*argv, "--dry-run"]) == 0
        assert "panel serve" in capsys.readouterr().out
        return
    if "--help" in argv:
        assert main(argv) == 0
        assert argv[0] in capsys.readouterr().out
        return
    assert argv[0] == "sample"
    for flag in ("--shear", "--catalogue", "--std", "--mask", "--cl-file"):
        if flag in argv:  # a file the README names must ship with the project
            assert (REPO / argv[argv.index(flag) + 1]).exists()
    out = tmp_path / Path(argv[argv.index("--output") + 1]).name
    rc = main([*argv, *TINY, "--output", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert out.exists()


def test_readme_python_example_runs(capsys) -> None:
    (block,) = _blocks("python")
    for old, new in PYTHON_SUBSTITUTIONS.items():
        assert old in block, f"README python example no longer contains {old!r}"
        block = block.replace(old, new)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed and printed[-1].split()[0] == "2"  # the last snapshot: step 2 of 2
