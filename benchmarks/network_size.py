r"""Network size vs held-out DSM loss vs forward cost of the hybrid prior's score network (issue #12); JSON + markdown.

What is measured, for every architecture of ``--sizes`` (default: channels 8-16-32, 16-32-64 (shipped), 24-48-96 with
2 residual blocks per scale, and 16-32-64 with 1):

* **Training** — the network is trained *from scratch* by ``kappascope train``'s code
  (:func:`core.priors.training.args.build_arg_parser` / ``config_from_args`` → :func:`core.priors.training.train`)
  with the data, noise-level and optimiser settings of the ``halo0.87`` preset of ``scripts/train_weights.py``
  (halo-model maps at 104.4/120′ ≈ 0.87′, 64², σ log-uniform on [1e-3, 1] plus the small-σ component, Adam with
  cosine decay from 1e-3 after 50 warm-up steps, global clipnorm 1, 64 held-out maps, seed 0) but **without**
  ``--init-weights`` and with ``--steps`` (default 300) and ``--batch-size`` (default 16) the same for every size.
  Same seed for all sizes: the same training batches, σ draws, noise, augmentations and held-out maps (the weight
  initialisation differs only because the architectures do).  Recorded: parameters, wall time of the ``train()``
  call (set-up, tracing, the loop, the validations at the preset's ``--val-every`` and the final held-out
  evaluation) and its process CPU time, the loop's wall time per step (``s_per_step`` = loop wall / steps,
  including the first step's tracing and the periodic validations; ``call_cpu_s_per_step`` = the call's CPU time /
  steps, set-up included), and the 1-minute load average (first, last, and sampled every 10 s: mean / max),
  because the 2-core CPU is shared.
* **Held-out DSM loss** — read from the metadata the trainer writes (``training.heldout_dsm_loss``): on the
  held-out maps, at each fixed σ of the trainer's ``val_sigmas`` and with common noise ``u`` for both models, the
  unweighted per-map loss ``mean_pixels (u + σ s(κ+σu, σ))²`` of the hybrid score and of the Gaussian-only score
  ``g_σ``, their means ± s.e. over maps and the paired difference hybrid − Gaussian ± its s.e.  The *relative
  gain* at σ (reported at σ = 0.01 and 0.03) is

  .. math::  G(σ) = \frac{\bar L_G(σ) - \bar L_H(σ)}{\bar L_G(σ)}, \qquad
             \operatorname{se} G = \frac{\operatorname{se}(L_H - L_G)}{\bar L_G(σ)}

  (the paired s.e.; ``\bar L_G`` is treated as fixed, its own relative s.e. is ≈ 0.4 % of itself).  The loss's
  minimum is the per-pixel MMSE/σ², so ``G`` is the fraction of the Gaussian prior's denoising error removed.
* **Forward cost** — for each map side of ``--forward-sizes`` (default 64 and 360; the networks are trained at 64²
  and, being convolutional, run at any even side ≥ 2^scales; pixel scale 0.87′ at every side, the cost does not
  depend on it), with a batch of ``--forward-batch`` maps (default 8, the dashboard's chains) and σ geometric in
  [1e-3, 0.5]: FLOP per map of the network forward (TensorFlow's graph profiler on the frozen Keras forward, as in
  ``benchmarks/bench_network.py``: all ops and ``Conv2D`` alone; 2 FLOP per multiply-add, FFTs not counted) and wall
  time per call of ``HybridPrior.score`` in graph mode as shipped (``jit_compile=False``, the residual a
  ``tf.function``): first call (tracing), then ``--repeats`` interleaved rounds over all sizes
  (``bench_network._time_interleaved``, so that a load change hits every size alike), minimum and median.  The
  forward timing is redone on every invocation (a few minutes), the training only when not finished.

Protocol notes.  All sizes get the same number of steps from scratch, so the table measures the held-out loss
*reached after a fixed training budget in steps* (loss per step), not the converged loss of each size; the larger
networks cost more per step.  For reference the report also lists the shipped ``hybrid_halo_0.87arcmin`` weights'
held-out losses as recorded in their metadata (lognormal pre-training for 3000 steps + 450 halo-model steps; same
seed, so the same held-out maps and noise if the halo simulator has not changed since).

Work directory (``--work-dir``, default ``/tmp/kappascope_network_size``; refused inside ``assets/``): per size
``<label>/ckpt`` (the trainer's resumable checkpoints), ``<label>/weights.{weights.h5,json}`` (the trained network),
``<label>/sessions.json`` (wall/CPU time and load of every training session) and ``<label>/result.json`` (the
finished training record; a size that has it is not trained again).  An interrupted run resumes from the latest
checkpoint (every 100 steps); a work folder holding a run with other settings is refused.

Usage::

    python -m benchmarks.network_size                       # default sizes, 300 steps, batch 16
    python -m benchmarks.network_size --sizes '8,16,32x2;16,32,64x2' --steps 100 --tag network_size_100
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._tables import run_or_report, write_report  # noqa: E402

logger = logging.getLogger("benchmarks.network_size")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = "8,16,32x2;16,32,64x2;24,48,96x2;16,32,64x1"
DEFAULT_WORK_DIR = Path("/tmp/kappascope_network_size")
#: the preset whose data / σ / optimiser settings every size is trained with (its --init-weights dropped)
PRESET = "halo0.87"
#: σ at which the relative held-out gain over the Gaussian prior is tabulated
GAIN_SIGMAS = (0.01, 0.03)
#: trainer options this benchmark sets itself (the preset's values are replaced)
_OWN_OPTIONS = ("--output", "--checkpoint-dir", "--init-weights", "--channels", "--blocks-per-scale", "--steps",
                "--batch-size", "--npix", "--val-maps", "--warmup-steps", "--seed")
SHIPPED_REFERENCE = "hybrid_halo_0.87arcmin"


# ------------------------------------------------------------------------------------------ sizes
@dataclass(frozen=True)
class Size:
    """One architecture: channels per U-Net scale and residual blocks per scale."""

    channels: tuple[int, ...]
    blocks: int

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.channels))}×{self.blocks}"

    @property
    def spec(self) -> str:
        """As written in ``--sizes``."""
        return f"{','.join(map(str, self.channels))}x{self.blocks}"

    @property
    def slug(self) -> str:
        """Folder name in the work directory."""
        return f"c{'-'.join(map(str, self.channels))}_b{self.blocks}"


def parse_sizes(text: str) -> list[Size]:
    """``"8,16,32x2;16,32,64x1"`` → sizes; ``ValueError`` naming ``--sizes`` for anything else.

    Entries are separated by ``;``, each ``C1,C2,...xB`` (channels per scale, ``x`` or ``×``, blocks per scale),
    all positive integers, no entry twice."""
    entries = [e.strip() for e in str(text).split(";") if e.strip()]
    if not entries:
        raise ValueError(f"--sizes needs at least one entry CHANNELSxBLOCKS (e.g. {DEFAULT_SIZES!r}), got {text!r}")
    sizes: list[Size] = []
    for entry in entries:
        chans, sep, blocks = entry.replace("×", "x").rpartition("x")
        try:
            if not sep:
                raise ValueError
            channels = tuple(int(c) for c in chans.split(","))
            size = Size(channels, int(blocks))
        except ValueError:
            raise ValueError(f"--sizes entry {entry!r} is not CHANNELSxBLOCKS such as '16,32,64x2' "
                             f"(comma-separated channels per scale, 'x', blocks per scale)") from None
        if any(c < 1 for c in size.channels) or size.blocks < 1:
            raise ValueError(f"--sizes entry {entry!r}: channels and blocks must be positive integers")
        if size in sizes:
            raise ValueError(f"--sizes lists {entry!r} twice")
        sizes.append(size)
    return sizes


def _sizes_arg(text: str) -> list[Size]:
    try:
        return parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _ints_arg(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return values


# ----------------------------------------------------------------------------------------- config
@dataclass
class NetworkSizeConfig:
    sizes: list[Size] = field(default_factory=lambda: parse_sizes(DEFAULT_SIZES))
    steps: int = 300
    batch_size: int = 16
    npix: int = 64
    val_maps: int = 64
    warmup_steps: int = 50
    seed: int = 0
    forward_sizes: tuple[int, ...] = (64, 360)
    forward_batch: int = 8
    repeats: int = 3
    work_dir: Path = DEFAULT_WORK_DIR
    progress: bool = False

    def validate(self) -> None:
        """ValueError naming the option; also validates every size's training configuration (before any training)."""
        from core.data.assets import ASSETS_DIR
        from core.priors.network import build_score_network, check_map_size, min_map_size

        for name, option in (("steps", "--steps"), ("batch_size", "--batch-size"), ("val_maps", "--val-maps"),
                             ("forward_batch", "--forward-batch"), ("repeats", "--repeats")):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) < 1:
                raise ValueError(f"{option} must be a positive integer, got {value!r}")
        if self.val_maps < 2:
            raise ValueError(f"--val-maps must be >= 2 (standard errors over maps), got {self.val_maps}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"--warmup-steps must be in [0, --steps={self.steps}), got {self.warmup_steps}")
        work = Path(self.work_dir).resolve()
        assets = Path(ASSETS_DIR).resolve()
        if work == assets or assets in work.parents:
            raise ValueError(f"--work-dir {str(self.work_dir)!r} lies inside the shipped assets {str(assets)!r}; "
                             "trained weights of this benchmark must not go there")
        if work.exists() and not work.is_dir():
            raise ValueError(f"--work-dir {str(self.work_dir)!r} exists and is not a directory")
        for size in self.sizes:
            try:
                tconfig = training_config(self, size)
                tconfig.validate()
                # the trainer's checks pass some channel lists the network cannot build (e.g. 4,8: a block's
                # GroupNorm with min(8, 8) groups sees the 4 channels of the scale above), so build it once, tiny
                build_score_network({"channels": list(size.channels), "blocks_per_scale": size.blocks,
                                     "groups": tconfig.groups}, npix=min_map_size(len(size.channels)))
            except ValueError as err:
                raise ValueError(f"--sizes entry {size.spec}: {err}") from None
            for n in self.forward_sizes:
                try:
                    check_map_size(n, len(size.channels), "--forward-sizes")
                except ValueError as err:
                    raise ValueError(f"{err} (--sizes entry {size.spec})") from None


def train_argv(config: NetworkSizeConfig, size: Size) -> list[str]:
    """The ``kappascope train`` arguments of ``size``: the ``halo0.87`` preset without ``--init-weights``,
    this benchmark's steps / batch / map side / held-out maps / warm-up / seed, the work-directory paths."""
    from scripts.train_weights import PRESETS

    preset = PRESETS[PRESET]
    options = dict(zip(preset[::2], preset[1::2]))
    for key in _OWN_OPTIONS:
        options.pop(key, None)
    folder = Path(config.work_dir) / size.slug
    options.update({
        "--output": str(folder / "weights"), "--checkpoint-dir": str(folder / "ckpt"),
        "--channels": ",".join(map(str, size.channels)), "--blocks-per-scale": str(size.blocks),
        "--steps": str(config.steps), "--batch-size": str(config.batch_size), "--npix": str(config.npix),
        "--val-maps": str(config.val_maps), "--warmup-steps": str(config.warmup_steps), "--seed": str(config.seed),
    })
    argv = [item for key, value in options.items() for item in (key, value)]
    argv += ["--overwrite"]  # only ever inside the work directory (validate() refuses assets/)
    if not config.progress:
        argv += ["--no-progress"]
    return argv


def training_config(config: NetworkSizeConfig, size: Size) -> Any:
    """The :class:`~core.priors.training.TrainingConfig` of ``size`` (``kappascope train`` parsing of
    :func:`train_argv`)."""
    from core.priors.training.args import build_arg_parser, config_from_args

    argv = train_argv(config, size)
    return config_from_args(build_arg_parser().parse_args(argv), command="kappascope train " + " ".join(argv))


# ---------------------------------------------------------------------------------------- helpers
class LoadSampler:
    """Samples the 1-minute load average every ``interval`` seconds in a daemon thread (context manager)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples or [os.getloadavg()[0]]
        return {"first": round(s[0], 2), "last": round(s[-1], 2), "mean": round(sum(s) / len(s), 2),
                "max": round(max(s), 2), "num_samples": len(s)}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _latest_step(checkpoint_dir: Path) -> int:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def relative_gain(heldout: dict[str, Any], sigma: float) -> dict[str, float] | None:
    """``G(σ)`` ± paired s.e. in percent from a trainer ``heldout_dsm_loss`` record (``None`` if σ is not in it)."""
    sigmas = heldout["sigma"]
    idx = [i for i, s in enumerate(sigmas) if math.isclose(s, sigma, rel_tol=1e-6)]
    if not idx:
        return None
    i = idx[0]
    gauss = heldout["gaussian"]["mean"][i]
    diff = heldout["diff_hybrid_minus_gaussian"]
    return {"mean": -100.0 * diff["mean"][i] / gauss, "se": 100.0 * diff["sem"][i] / gauss, "sigma": float(sigma)}


def _summarise_heldout(heldout: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_maps": heldout["num_maps"],
        "per_sigma": [
            {"sigma": s, "hybrid": heldout["hybrid"]["mean"][i], "hybrid_se": heldout["hybrid"]["sem"][i],
             "gaussian": heldout["gaussian"]["mean"][i], "gaussian_se": heldout["gaussian"]["sem"][i],
             "diff_hybrid_minus_gaussian": heldout["diff_hybrid_minus_gaussian"]["mean"][i],
             "diff_se": heldout["diff_hybrid_minus_gaussian"]["sem"][i]}
            for i, s in enumerate(heldout["sigma"])
        ],
        "relative_gain_percent": {f"{s:g}": relative_gain(heldout, s) for s in GAIN_SIGMAS},
    }


# --------------------------------------------------------------------------------------- training
def train_size(config: NetworkSizeConfig, size: Size) -> dict[str, Any]:
    """Train (or resume, or reuse) ``size``; its finished training record (also written to ``<label>/result.json``)."""
    from core.priors.training import train
    from core.priors.weights import read_metadata

    folder = Path(config.work_dir) / size.slug
    argv = train_argv(config, size)
    result_path, protocol_path, sessions_path = folder / "result.json", folder / "protocol.json", folder / "sessions.json"
    finished = _read_json(result_path)
    if finished is not None:
        if finished.get("train_argv") != argv:
            raise ValueError(f"--work-dir {str(config.work_dir)!r}: {result_path} was made with other settings "
                             f"({finished.get('train_argv')}); use another --work-dir or delete {folder}")
        logger.info("%s: finished result found in %s, not trained again", size.label, result_path)
        return finished
    stored = _read_json(protocol_path)
    if stored is not None and stored != argv:
        raise ValueError(f"--work-dir {str(config.work_dir)!r}: {folder} holds a run with other settings ({stored}); "
                         f"use another --work-dir or delete {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    protocol_path.write_text(json.dumps(argv) + "\n")
    sessions = _read_json(sessions_path) or []

    tconfig = training_config(config, size)
    start = _latest_step(Path(tconfig.checkpoint_dir))
    logger.info("%s: training from step %d to %d (work folder %s)", size.label, start, config.steps, folder)
    t0, c0 = time.perf_counter(), time.process_time()
    with LoadSampler() as load:
        trained = train(tconfig, save=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    meta = trained.metadata
    sessions.append({"start_step": start, "end_step": config.steps, "call_wall_s": round(wall, 2),
                     "loop_wall_s": meta["training"]["wall_time_s_this_session"], "call_cpu_s": round(cpu, 2),
                     "load_average_1min": load.summary(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    sessions_path.write_text(json.dumps(sessions, indent=1) + "\n")

    meta = read_metadata(trained.metadata_path)  # what was written (the source of the held-out losses)
    steps_timed = sum(s["end_step"] - s["start_step"] for s in sessions)
    loop_wall = sum(s["loop_wall_s"] for s in sessions)
    heldout = meta["training"]["heldout_dsm_loss"]
    record = {
        "size": size.label, "channels": list(size.channels), "blocks_per_scale": size.blocks,
        "num_parameters": int(meta["num_parameters"]),
        "weights": str(trained.weights_path), "metadata": str(trained.metadata_path),
        "train_argv": argv,
        "training": {
            "steps": config.steps, "batch_size": config.batch_size,
            "final_val_loss": meta["training"]["final_val_loss"],
            "final_train_loss_ema": meta["training"]["final_train_loss_ema"],
            "history": meta["training"]["history"],
            "sessions": sessions,
            "train_wall_s": round(sum(s["call_wall_s"] for s in sessions), 1),
            "loop_wall_s": round(loop_wall, 1),
            "steps_timed": steps_timed,
            "s_per_step": round(loop_wall / steps_timed, 4) if steps_timed else None,
            "call_cpu_s_per_step": (round(sum(s["call_cpu_s"] for s in sessions) / steps_timed, 4) if steps_timed else None),
        },
        "heldout_dsm_loss": heldout,
        "heldout": _summarise_heldout(heldout),
    }
    result_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


# ---------------------------------------------------------------------------------------- forward
def network_flops(network: Any, x: Any, sigma: Any, g: Any, op_types: list[str] | None = None) -> int:
    """FLOP of one batched Keras forward ``network((x, σ, g))`` (graph profiler on the frozen concrete function,
    as ``benchmarks/bench_network.py`` counts them)."""
    import tensorflow as tf

    from benchmarks.bench_network import graph_flops

    args = (x, sigma, g) if network.hybrid else (x, sigma)
    return graph_flops(tf.function(lambda *a: network(a)).get_concrete_function(*args), op_types)


def measure_forward(config: NetworkSizeConfig, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """FLOP per map and interleaved wall time per ``HybridPrior.score`` call (graph mode) of every trained size."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.bench_network import _time_interleaved
    from core.physics.geometry import MapGeometry
    from core.priors.weights import load_hybrid_prior

    pixel = training_config(config, config.sizes[0]).pixel_size_arcmin  # the preset's 104.4/120 arcmin
    batch = config.forward_batch
    out: dict[str, Any] = {}
    for npix in config.forward_sizes:
        geometry = MapGeometry(npix, pixel)
        x = tf.random.stateless_normal((batch, npix, npix), [0, npix]) * 0.02
        sigma = tf.constant(np.geomspace(1e-3, 0.5, batch), tf.float32)
        runs, flop = {}, {}
        for rec in records:
            prior = load_hybrid_prior(rec["metadata"], geometry, jit_compile=False)
            g = prior.gaussian.score(x, sigma)
            flop[rec["size"]] = (network_flops(prior.network, x, sigma, g) / batch,
                                 network_flops(prior.network, x, sigma, g, ["Conv2D"]) / batch)
            runs[rec["size"]] = (lambda p=prior: p.score(x, sigma))
        load_before = os.getloadavg()[0]
        timings = _time_interleaved(runs, config.repeats)
        load_after = os.getloadavg()[0]
        per_size = {}
        for name, timing in timings.items():
            per_size[name] = {
                "mflop_per_map": round(flop[name][0] / 1e6, 2), "mflop_per_map_conv2d": round(flop[name][1] / 1e6, 2),
                **timing, "ms_per_call_min": round(1e3 * timing["min_s"], 2),
                "ms_per_call_median": round(1e3 * timing["median_s"], 2),
                "gflop_per_s": round(flop[name][0] * batch / timing["min_s"] / 1e9, 2),
            }
            logger.info("%d² %s: %s", npix, name, per_size[name])
        out[str(npix)] = {"npix": npix, "pixel_arcmin": round(pixel, 4), "batch": batch, "repeats": config.repeats,
                          "load_average_1min": [round(load_before, 2), round(load_after, 2)], "sizes": per_size}
    return out


def _shipped_reference() -> dict[str, Any] | None:
    from core.priors.weights import WEIGHTS_DIR, read_metadata

    path = Path(WEIGHTS_DIR) / f"{SHIPPED_REFERENCE}.json"
    if not path.exists():
        return None
    meta = read_metadata(path)
    heldout = meta["training"]["heldout_dsm_loss"]
    arch = (meta.get("architecture") or {}).get("config") or {}
    return {"weights": SHIPPED_REFERENCE, "num_parameters": meta.get("num_parameters"),
            "channels": arch.get("channels"), "blocks_per_scale": arch.get("blocks_per_scale"),
            "training": "lognormal 3000 steps, then halo-model fine-tuning 450 steps (scripts/train_weights.py halo0.87)",
            "heldout": _summarise_heldout(heldout)}


# ------------------------------------------------------------------------------------------- run
def run_benchmark(config: NetworkSizeConfig) -> dict[str, Any]:
    """Train every size (resumable), measure the forward cost of all, and return the result document."""
    import tensorflow as tf

    config.validate()
    Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = [train_size(config, size) for size in config.sizes]
    forward = measure_forward(config, records)
    rows = []
    for rec in records:
        row = {k: rec[k] for k in ("size", "channels", "blocks_per_scale", "num_parameters", "weights")}
        row["training"] = {k: v for k, v in rec["training"].items() if k != "history"}
        row["heldout"] = rec["heldout"]
        row["forward"] = {n: forward[n]["sizes"][rec["size"]] for n in forward}
        rows.append(row)
    example = train_argv(config, config.sizes[0])
    return {
        "benchmark": "benchmarks/network_size.py",
        "protocol": {
            "preset": f"scripts/train_weights.py {PRESET} without --init-weights (from scratch)",
            "train_argv_first_size": example,
            "steps": config.steps, "batch_size": config.batch_size, "npix": config.npix, "val_maps": config.val_maps,
            "warmup_steps": config.warmup_steps, "seed": config.seed,
            "forward": {"sizes": list(config.forward_sizes), "batch": config.forward_batch, "repeats": config.repeats,
                        "mode": "HybridPrior.score, jit_compile=False (graph, as shipped), interleaved rounds"},
            "relative_gain": "100 x (L_gauss - L_hybrid) / L_gauss at fixed sigma, paired s.e. / L_gauss",
            "s_per_step": "training-loop wall time / steps (first-step tracing and periodic validations included)",
        },
        "work_dir": str(config.work_dir),
        "rows": rows,
        "forward": {n: {k: v for k, v in forward[n].items() if k != "sizes"} for n in forward},
        "shipped_reference": _shipped_reference(),
        "note": note_sentence(config),
        "wall_s_this_invocation": round(time.perf_counter() - t0, 1),
        "load_average_1min_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def note_sentence(config: NetworkSizeConfig) -> str:
    return (f"All {len(config.sizes)} sizes were trained from scratch for the same {config.steps} steps (batch "
            f"{config.batch_size}, seed {config.seed}, halo-model maps at 0.87′, {config.npix}², the {PRESET} preset's "
            "data, σ and optimiser settings), so the held-out gains measure the loss reached per training step, not "
            "the converged loss of each size. Conclusion (lead): … size chosen: … because …")


def _fmt_gain(entry: dict[str, float] | None) -> str:
    if entry is None:
        return "–"
    return f"{entry['mean']:+.2f} ± {entry['se']:.2f} %"


def markdown_table(result: dict[str, Any]) -> str:
    proto = result["protocol"]
    sides = [str(n) for n in proto["forward"]["sizes"]]
    first = sides[0]
    batch = proto["forward"]["batch"]
    loads = ", ".join(f"{n}²: {result['forward'][n]['load_average_1min']}" for n in sides)
    gain_heads = " | ".join(f"held-out DSM gain σ={s:g}" for s in GAIN_SIGMAS)
    lines = [
        "# Network size: held-out DSM loss vs forward cost (issue #12)",
        "",
        f"From scratch, {proto['steps']} steps × batch {proto['batch_size']}, {proto['npix']}² halo-model maps at 0.87′, "
        f"seed {proto['seed']} ({proto['preset']}); held-out: {result['rows'][0]['heldout']['num_maps']} maps. "
        f"Forward: `HybridPrior.score` graph mode, batch {batch}, min of {proto['forward']['repeats']} interleaved "
        f"calls (1-min load before/after: {loads}). "
        "Gain = (L_Gauss − L_hybrid)/L_Gauss ± paired s.e.",
        "",
        f"| size | params | MFLOP/map {first}² | ms per batch-{batch} call {' / '.join(s + '²' for s in sides)} | "
        f"train s/step (load mean) | {gain_heads} |",
        "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in GAIN_SIGMAS) + " |",
    ]
    for row in result["rows"]:
        fwd = row["forward"]
        tr = row["training"]
        loads = [s["load_average_1min"]["mean"] for s in tr["sessions"]]
        load = f"{sum(loads) / len(loads):.1f}" if loads else "–"
        sps = f"{tr['s_per_step']:.2f}" if tr["s_per_step"] is not None else "–"
        gains = " | ".join(_fmt_gain(row["heldout"]["relative_gain_percent"][f"{s:g}"]) for s in GAIN_SIGMAS)
        times = " / ".join(f"{fwd[s]['ms_per_call_min']:.1f}" for s in sides)
        lines.append(f"| {row['size']} | {row['num_parameters']:,} | {fwd[first]['mflop_per_map']:.1f} | "
                     f"{times} | {sps} ({load}) | {gains} |")
    ref = result.get("shipped_reference")
    if ref is not None:
        gains = " | ".join(_fmt_gain(ref["heldout"]["relative_gain_percent"][f"{s:g}"]) for s in GAIN_SIGMAS)
        lines += ["", f"Reference, shipped `{ref['weights']}` ({ref['training']}; its metadata, "
                      f"{ref['heldout']['num_maps']} held-out maps): {ref['num_parameters']:,} params, gains {gains}."]
    lines += ["", "Held-out DSM loss difference hybrid − Gaussian per σ (± paired s.e.):", "",
              "| size | " + " | ".join(f"σ={p['sigma']:g}" for p in result["rows"][0]["heldout"]["per_sigma"]) + " |",
              "| --- | " + " | ".join("---" for _ in result["rows"][0]["heldout"]["per_sigma"]) + " |"]
    for row in result["rows"]:
        cells = " | ".join(f"{p['diff_hybrid_minus_gaussian']:+.2e} ± {p['diff_se']:.1e}" for p in row["heldout"]["per_sigma"])
        lines.append(f"| {row['size']} | {cells} |")
    lines += ["", result["note"], ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    d = NetworkSizeConfig()
    p = argparse.ArgumentParser(prog="python -m benchmarks.network_size", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", type=_sizes_arg, default=DEFAULT_SIZES,
                   help="';'-separated architectures CHANNELSxBLOCKS (channels per U-Net scale, blocks per scale)")
    p.add_argument("--steps", type=int, default=d.steps, help="optimiser steps per size (the same for all, from scratch)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="maps per optimiser step")
    p.add_argument("--npix", type=int, default=d.npix, help="training map side")
    p.add_argument("--val-maps", type=int, default=d.val_maps, help="held-out maps of the DSM loss")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="learning-rate warm-up steps (< --steps)")
    p.add_argument("--seed", type=int, default=d.seed, help="training seed (the same for every size)")
    p.add_argument("--forward-sizes", type=_ints_arg, default=d.forward_sizes, help="comma-separated map sides of the forward timing")
    p.add_argument("--forward-batch", type=int, default=d.forward_batch, help="maps per timed score call")
    p.add_argument("--repeats", type=int, default=d.repeats, help="timed rounds of the forward (after one warm-up call)")
    p.add_argument("--work-dir", type=Path, default=d.work_dir, help="checkpoints and trained weights (never assets/)")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where to write the JSON and markdown")
    p.add_argument("--tag", default="network_size", help="file stem of the JSON and markdown")
    p.add_argument("--progress", action="store_true", help="show the trainer's progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> NetworkSizeConfig:
    sizes = args.sizes if isinstance(args.sizes, list) else parse_sizes(args.sizes)
    return NetworkSizeConfig(sizes=sizes, steps=args.steps, batch_size=args.batch_size, npix=args.npix,
                             val_maps=args.val_maps, warmup_steps=args.warmup_steps, seed=args.seed,
                             forward_sizes=tuple(args.forward_sizes), forward_batch=args.forward_batch,
                             repeats=args.repeats, work_dir=args.work_dir, progress=args.progress)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    from core.data.assets import ASSETS_DIR

    out = args.output_dir.resolve()
    if out == Path(ASSETS_DIR).resolve() or Path(ASSETS_DIR).resolve() in out.parents:
        parser.error(f"--output-dir {str(args.output_dir)!r} lies inside the shipped assets")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_or_report("network_size", lambda: run_benchmark(config_from_args(args)))
    if result is None:
        return 2
    result["command"] = "python -m benchmarks.network_size " + " ".join(sys.argv[1:] if argv is None else argv)
    markdown = markdown_table(result)
    write_report(args.output_dir, args.tag, result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
