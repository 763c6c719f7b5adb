"""Per-map hybrid cache, ``--import-previous`` and halo-pixel statistics of ``benchmarks/halo_posterior.py``.

Tiny runs (0.87′, 16² pixels, 2 maps, 4 chains, 2 levels, 200 random pixels, haloes ≥ 3e13 M⊙ so that the small
patch has some) through :func:`run_benchmark`, with the Gaussian prior standing in for the hybrid weights (no
trained network needed) and the real :func:`core.pipeline.run` wrapped to count its calls."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import halo_posterior as hp

LABEL = "stand-in"
HYBRID = hp.method_name(LABEL)
CONFIG = hp.HaloPosteriorConfig(scales=("0.87",), npix=16, num_maps=2, num_chains=4, num_levels=2,
                                weights={LABEL: "gaussian_stand_in_{scale}"}, mass_threshold=3e13, num_random=200)


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


def _patch(mp: pytest.MonkeyPatch, weights_sha256: str | None = None) -> _Counter:
    """The Gaussian prior as the 'hybrid' weights (with ``weights_sha256`` as its metadata's digest, if given);
    :func:`core.pipeline.run` counted."""
    from core import pipeline
    from core.priors.gaussian import GaussianPrior

    counter = _Counter()
    real_run = pipeline.run

    def counting_run(*args: Any, **kwargs: Any):
        counter.calls += 1
        return real_run(*args, **kwargs)

    def stand_in(setup, power):
        prior = GaussianPrior(setup.geometry, power)
        if weights_sha256 is not None:
            prior.metadata = {"weights_sha256": weights_sha256}
        return prior

    def fake_priors(config, setup, power, notes):
        return {hp.method_name(label): (pattern.format(scale=setup.name), stand_in(setup, power))
                for label, pattern in config.weights.items()}

    mp.setattr(pipeline, "run", counting_run)
    mp.setattr(hp, "_load_priors", fake_priors)
    return counter


def _run(config: hp.HaloPosteriorConfig, cache_dir: Path | None,
         weights_sha256: str | None = None) -> tuple[dict[str, Any], int]:
    with pytest.MonkeyPatch.context() as mp:
        counter = _patch(mp, weights_sha256)
        result = hp.run_benchmark(config, cache_dir)
    return json.loads(json.dumps(result)), counter.calls  # as written to / read from the JSON


def _without_seconds(methods: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in m.items() if k not in ("seconds", "maps_from_cache")} for name, m in methods.items()}


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON values with NaN == NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, int]:
    cache_dir = tmp_path_factory.mktemp("cache")
    result, calls = _run(CONFIG, cache_dir)
    return result, cache_dir, calls


def test_first_run_writes_one_entry_per_hybrid_map(first_run):
    result, cache_dir, calls = first_run
    assert calls == CONFIG.num_maps
    files = sorted(p.name for p in cache_dir.iterdir())
    assert files == ["0.87arcmin_stand-in_map000.json", "0.87arcmin_stand-in_map001.json"]
    entry = json.loads((cache_dir / files[1]).read_text())
    assert entry["fingerprint"] == hp.hybrid_fingerprint(CONFIG, "0.87", LABEL, 1)
    res = result["scales"]["0.87"]
    assert entry["metrics"] == res["per_map"][HYBRID][1]
    n0 = res["truth"]["haloes"][0]["num_haloes_above_threshold_in_mask"]
    assert entry["significance_at_haloes"] == res["significance_at_haloes_per_halo"][HYBRID][n0:]
    assert res["truth"]["num_haloes_above_threshold_in_mask"] > 0  # the halo statistics are not vacuous


def test_second_run_reuses_the_cache_with_identical_metrics(first_run):
    result, cache_dir, _ = first_run
    again, calls = _run(CONFIG, cache_dir)
    assert calls == 0  # no sampler run: both hybrid maps came from the cache
    a, b = result["scales"]["0.87"], again["scales"]["0.87"]
    assert b["methods"][HYBRID]["maps_from_cache"] == [0, 1]
    assert again["cache"]["reused"] == {"0.87": {HYBRID: [0, 1]}}
    assert _same(a["per_map"], b["per_map"])
    assert _same(a["significance_at_haloes_per_halo"], b["significance_at_haloes_per_halo"])
    assert _same(a["halo_pixels_per_map"], b["halo_pixels_per_map"])
    assert _same(_without_seconds(a["methods"]), _without_seconds(b["methods"]))
    assert b["methods"][HYBRID]["seconds"] == a["methods"][HYBRID]["seconds"]  # the original runs' time
    assert hp.markdown_table(again).count("| Hybrid posterior (stand-in) |") == 2  # both tables


def test_changed_fingerprint_field_is_not_reused(first_run, tmp_path):
    _, cache_dir, _ = first_run
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    changed = dataclasses.replace(CONFIG, num_levels=3)
    result, calls = _run(changed, copy)
    assert calls == CONFIG.num_maps
    assert "maps_from_cache" not in result["scales"]["0.87"]["methods"][HYBRID]
    entry = json.loads((copy / "0.87arcmin_stand-in_map000.json").read_text())
    assert entry["fingerprint"]["num_levels"] == 3  # recomputed and overwritten
    assert hp.fingerprint_differences(hp.hybrid_fingerprint(CONFIG, "0.87", LABEL, 0),
                                      hp.hybrid_fingerprint(changed, "0.87", LABEL, 0)) == ["num_levels"]


def test_retrained_weights_of_the_same_name_are_not_reused(first_run, tmp_path):
    _, cache_dir, _ = first_run
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    _, calls = _run(CONFIG, copy, weights_sha256="0" * 64)  # same name and options, another weights file
    assert calls == CONFIG.num_maps
    entry = json.loads((copy / "0.87arcmin_stand-in_map000.json").read_text())
    assert entry["fingerprint"]["weights_sha256"] == "0" * 64
    _, calls = _run(CONFIG, copy, weights_sha256="0" * 64)
    assert calls == 0
    assert hp.fingerprint_differences(hp.hybrid_fingerprint(CONFIG, "0.87", LABEL, 0),
                                      hp.hybrid_fingerprint(CONFIG, "0.87", LABEL, 0, "0" * 64)) == ["weights_sha256"]


def test_weights_digest_reads_the_shipped_metadata():
    from core.priors.weights import read_metadata, resolve_weights

    meta = read_metadata(resolve_weights(104.4 / 120, "hybrid_halo_0.87arcmin"))
    assert hp.weights_digest("hybrid_halo_0.87arcmin", "0.87") == meta["weights_sha256"]
    assert hp.weights_digest("no_such_weights_{scale}", "0.87") is None


def test_import_previous_refuses_a_different_config(first_run, tmp_path):
    result, _, _ = first_run
    old = tmp_path / "old.json"
    old.write_text(json.dumps(result))
    cache = hp.HybridCache(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"num_levels \(previous 2, this run 5\)"):
        hp.import_previous(old, dataclasses.replace(CONFIG, num_levels=5), cache)
    with pytest.raises(ValueError, match="sigma_min"):
        hp.import_previous(old, dataclasses.replace(CONFIG, sigma_min=2e-3), cache)
    with pytest.raises(ValueError, match="no hybrid result"):
        hp.import_previous(old, dataclasses.replace(CONFIG, weights={"other": "x_{scale}"}), cache)
    assert not (tmp_path / "cache").exists()  # nothing written


def test_import_previous_seeds_the_cache_and_missing_halo_pixels_are_left_out(first_run, tmp_path):
    result, _, _ = first_run
    old = tmp_path / "old.json"
    old.write_text(json.dumps(result))
    cache = hp.HybridCache(tmp_path / "cache")
    assert hp.import_previous(old, CONFIG, cache) == {"0.87": {HYBRID: [0, 1]}}
    (tmp_path / "cache" / "0.87arcmin_stand-in_map001.json").unlink()  # map 1 to be recomputed
    again, calls = _run(CONFIG, cache.directory)
    assert calls == 1
    a, b = result["scales"]["0.87"], again["scales"]["0.87"]
    assert _same(a["per_map"][HYBRID], b["per_map"][HYBRID])
    assert _same(a["significance_at_haloes_per_halo"][HYBRID], b["significance_at_haloes_per_halo"][HYBRID])
    assert b["halo_pixels_per_map"][HYBRID][0] is None  # imported: no halo-pixel values
    pooled = b["methods"][HYBRID]["halo_pixels"]
    assert pooled["num_maps"] == 1 and pooled["num_maps_missing"] == 1
    assert pooled["truth_at_haloes"]["n"] == a["truth"]["haloes"][1]["num_haloes_above_threshold_in_mask"]
    assert pooled["truth_mean_at_random"]["n"] == 1
    assert "1, 1 without" in hp.markdown_table(again)


def test_cli_refuses_import_without_cache(tmp_path, capsys):
    code = hp.main(["--quick", "--no-cache", "--import-previous", str(tmp_path / "x.json"),
                    "--output-dir", str(tmp_path)])
    assert code == 2 and "--import-previous needs the cache" in capsys.readouterr().err


def test_halo_pixel_values_known_answer():
    mask = np.ones((4, 4))
    mask[0] = 0
    truth = np.arange(16, dtype=float).reshape(4, 4)
    point, std = truth + 1.0, np.full((4, 4), 2.0)
    out = hp.halo_pixel_values(point, std, truth, point / std, np.array([2]), np.array([3]), mask, 500, seed=4)
    assert out["kappa_hat_at_haloes"] == [12.0] and out["std_at_haloes"] == [2.0] and out["truth_at_haloes"] == [11.0]
    pick = hp.random_pixels(mask, 500, 4)
    assert np.all(pick[:, 0] > 0)  # observed rows only
    t = truth[pick[:, 0], pick[:, 1]]
    r = out["random"]
    assert r["truth_mean"] == pytest.approx(t.mean()) and r["kappa_hat_mean"] == pytest.approx(t.mean() + 1.0)
    assert r["truth_median"] == pytest.approx(np.median(t)) and r["std_mean"] == 2.0
    assert r["truth_significance_mean"] == pytest.approx(t.mean() / truth[1:].std())
    assert r["truth_fraction_negative"] == 0.0
    no_posterior = hp.halo_pixel_values(point, None, truth, point, np.array([2]), np.array([3]), mask, 50, seed=4)
    assert np.isnan(no_posterior["std_at_haloes"][0]) and np.isnan(no_posterior["random"]["std_mean"])
    pooled = hp.pool_halo_pixels([out, None, no_posterior])
    assert pooled["num_maps"] == 2 and pooled["num_maps_missing"] == 1
    assert pooled["std_at_haloes"]["n"] == 1 and pooled["truth_at_haloes"]["n"] == 2
