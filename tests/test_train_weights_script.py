"""``scripts/train_weights.py``: presets reach ``kappascope train`` unchanged; ``--from-scratch`` drops the halo
presets' ``--init-weights`` (and only that)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_weights.py"


@pytest.fixture()
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("train_weights_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "train_main", lambda argv, command: calls.append((argv, command)) or 0)
    return module, calls


def test_halo_preset_fine_tunes_unless_from_scratch(script):
    module, calls = script
    assert module.main(["halo0.87", "--steps", "5"]) == 0
    argv, command = calls[-1]
    assert "--init-weights" in argv and argv[-2:] == ["--steps", "5"]
    assert module.main(["halo0.87", "--from-scratch", "--channels", "24,48,96"]) == 0
    argv, command = calls[-1]
    assert "--init-weights" not in argv and "--from-scratch" not in argv
    assert argv[-2:] == ["--channels", "24,48,96"]
    assert command == "python scripts/train_weights.py halo0.87 --from-scratch --channels 24,48,96"
    # everything else of the preset is kept
    preset = list(module.PRESETS["halo0.87"])
    at = preset.index("--init-weights")
    assert argv[:-2] == preset[:at] + preset[at + 2:]


def test_unknown_preset_prints_usage(script, capsys):
    module, calls = script
    assert module.main(["halo9"]) == 2 and not calls
    assert "usage" in capsys.readouterr().err
