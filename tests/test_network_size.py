"""``benchmarks/network_size.py``: the ``--sizes`` parser, option errors, the training command per size, and one
tiny end-to-end run (2 tiny networks, 3 steps, 16² maps) that must write one finite row per size, resume
without retraining, refuse a changed protocol in the same work folder, and write nothing under ``assets/``."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from benchmarks.network_size import (DEFAULT_SIZES, NetworkSizeConfig, Size, build_parser, config_from_args, main,
                                     parse_sizes, train_argv, train_size)


def test_parse_sizes_reads_channels_and_blocks() -> None:
    sizes = parse_sizes(DEFAULT_SIZES)
    assert sizes == [Size((8, 16, 32), 2), Size((16, 32, 64), 2), Size((24, 48, 96), 2), Size((16, 32, 64), 1)]
    assert sizes[1].label == "16-32-64×2" and sizes[1].slug == "c16-32-64_b2"
    assert parse_sizes(" 4,8x1 ; 8×3 ;") == [Size((4, 8), 1), Size((8,), 3)]


@pytest.mark.parametrize("text", ["", ";", "16,32,64", "16,a,64x2", "16,32x0", "0,8x1", "16,32x2;16,32x2", "x2",
                                  "16,32x2.5", "16,,32x2"])
def test_parse_sizes_rejects_bad_entries_naming_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--sizes"):
        parse_sizes(text)


@pytest.mark.parametrize("argv, option", [(["--sizes", "16,32,64"], "--sizes"), (["--steps", "0"], "--steps"),
                                          (["--forward-sizes", "64,a"], "--forward-sizes")])
def test_bad_options_are_argparse_errors_naming_the_option(argv: list[str], option: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert option in capsys.readouterr().err


def test_train_argv_is_the_halo_preset_from_scratch_inside_the_work_dir(tmp_path: Path) -> None:
    config = NetworkSizeConfig(work_dir=tmp_path)
    argv = train_argv(config, Size((24, 48, 96), 2))
    opts = dict(zip(argv[::2], argv[1::2]))
    assert "--init-weights" not in argv
    assert opts["--source"] == "halo_model" and opts["--learning-rate"] == "1e-3" and opts["--npix"] == "64"
    assert opts["--channels"] == "24,48,96" and opts["--blocks-per-scale"] == "2"
    assert opts["--steps"] == "300" and opts["--batch-size"] == "16" and opts["--seed"] == "0"
    assert Path(opts["--output"]).parent == tmp_path / "c24-48-96_b2"
    assert Path(opts["--checkpoint-dir"]).parent == tmp_path / "c24-48-96_b2"


def test_work_dir_inside_assets_and_bad_groups_are_refused(tmp_path: Path) -> None:
    from core.data.assets import ASSETS_DIR

    with pytest.raises(ValueError, match="--work-dir"):
        NetworkSizeConfig(work_dir=Path(ASSETS_DIR) / "weights" / "sizes").validate()
    with pytest.raises(ValueError, match="--sizes entry 12,24x1"):  # 12 channels do not split into 8 GroupNorm groups
        NetworkSizeConfig(sizes=parse_sizes("12,24x1"), work_dir=tmp_path).validate()
    with pytest.raises(ValueError, match="--sizes entry 4,8x1"):  # the trainer refuses it too (GroupNorm groups)
        NetworkSizeConfig(sizes=parse_sizes("4,8x1"), work_dir=tmp_path).validate()
    with pytest.raises(ValueError, match="--forward-sizes"):
        NetworkSizeConfig(sizes=parse_sizes("8,8,8,8x1"), forward_sizes=(8,), work_dir=tmp_path).validate()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_tiny_end_to_end_run_writes_one_finite_row_per_size_and_nothing_in_assets(tmp_path: Path) -> None:
    from core.data.assets import ASSETS_DIR

    before = _snapshot(Path(ASSETS_DIR))
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--sizes", "8,16x1;8x1", "--steps", "3", "--warmup-steps", "1", "--batch-size", "2", "--val-maps", "2",
            "--npix", "16", "--forward-sizes", "16", "--forward-batch", "2", "--repeats", "1",
            "--work-dir", str(work), "--output-dir", str(out), "--tag", "tiny"]
    assert main(argv) == 0
    doc = json.loads((out / "tiny.json").read_text())
    markdown = (out / "tiny.md").read_text()
    assert [r["size"] for r in doc["rows"]] == ["8-16×1", "8×1"]
    for row in doc["rows"]:
        assert row["num_parameters"] > 0
        assert Path(row["weights"]).resolve().is_relative_to(work.resolve())
        tr = row["training"]
        assert tr["steps_timed"] == 3 and tr["s_per_step"] > 0 and math.isfinite(tr["s_per_step"])
        for s in ("0.01", "0.03"):
            gain = row["heldout"]["relative_gain_percent"][s]
            assert math.isfinite(gain["mean"]) and math.isfinite(gain["se"]) and gain["se"] >= 0
        fwd = row["forward"]["16"]
        assert fwd["mflop_per_map"] > 0 and fwd["ms_per_call_min"] > 0 and math.isfinite(fwd["ms_per_call_min"])
        assert row["size"] in markdown
    assert "from scratch for the same 3 steps" in doc["note"]

    # resumed: a finished size is not trained again (no new session, the same record); the same work folder with
    # other settings is refused, naming --work-dir
    config = config_from_args(build_parser().parse_args(argv))
    for size, row in zip(config.sizes, doc["rows"]):
        record = train_size(config, size)
        assert len(record["training"]["sessions"]) == 1 and record["heldout"] == row["heldout"]
    with pytest.raises(ValueError, match="--work-dir"):
        train_size(dataclasses.replace(config, steps=4), config.sizes[0])
    # nothing of this run under assets/ (other engineers may edit files there meanwhile: a changed or new file must
    # neither be one of the trainer's outputs nor mention this run's folder, which every file it writes does)
    after = _snapshot(Path(ASSETS_DIR))
    for path in (p for p in after if before.get(p) != after[p]):
        assert not Path(path).name.startswith("weights.") and str(tmp_path) not in Path(path).read_bytes().decode(errors="ignore")
