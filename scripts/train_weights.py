"""Train the score-network weights shipped in ``assets/weights/`` (thin wrapper over :mod:`core.priors.training`).

Presets (the exact commands are also recorded in each weight file's metadata JSON and in
``assets/weights/README.md``)::

    python scripts/train_weights.py 0.87     # 64×64 lognormal maps at 104.4/120 arcmin (dashboard + COSMOS CPU mode)
    python scripts/train_weights.py 0.29     # 64×64 maps at 0.29 arcmin (native COSMOS GPU mode)
    python scripts/train_weights.py halo0.87 # 64×64 halo-model maps (core.physics.halos) at 104.4/120 arcmin
    python scripts/train_weights.py halo0.29 # 64×64 halo-model maps at 0.29 arcmin

The ``halo*`` presets fine-tune the lognormal weights on halo-model maps (``--init-weights``); the shipped
``hybrid_halo_0.87arcmin`` ran its first 100 steps under ``--steps 800`` and was resumed from that checkpoint
with ``--steps 450`` (the CPU was shared by ~8 jobs), so the plain preset reproduces it up to the
learning-rate schedule of those first 100 steps. Existing output files are never replaced without
``--overwrite``.

Extra arguments are passed on to ``kappascope train`` and override the preset, e.g.
``python scripts/train_weights.py 0.87 --steps 200 --output /tmp/test``. ``--from-scratch`` (this script's own
flag) drops a halo preset's ``--init-weights``, so the network starts from a fresh initialisation, e.g. the
wider network of ``benchmarks/results/compare_weights_halo_0.87_wide.md``::

    python scripts/train_weights.py halo0.87 --from-scratch --channels 24,48,96 --steps 3000 --learning-rate 2e-3 \
        --warmup-steps 100 --seed 3 --output /tmp/hybrid_halo_wide_0.87arcmin --checkpoint-dir /tmp/wide_ckpt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.priors.training import train_main  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "weights"

#: The options every preset shares, in command-line order (``None``: set by each preset, left out when unset).
BASE: dict[str, str | None] = {
    "--output": None, "--pixel-size": None, "--npix": "64", "--field": None, "--source": None, "--z-source": "1.0",
    "--channels": "16,32,64", "--blocks-per-scale": "2", "--init-weights": None,
    "--steps": "3000", "--batch-size": "16", "--learning-rate": "2e-3", "--warmup-steps": "100",
    "--sigma-min": "1e-3", "--sigma-max": "1.0", "--sigma-small": "0.05", "--small-fraction": "0.3",
    "--val-maps": "64", "--val-every": "250", "--checkpoint-every": "250", "--checkpoint-dir": None, "--seed": None,
}
#: Per pixel scale: the pixel size and the run seed (0 at 0.87′, 1 at 0.29′).
SCALES = {"0.87": (repr(104.4 / 120), "0"), "0.29": ("0.29", "1")}
#: The halo presets fine-tune the lognormal weights of their scale on halo-model maps (steps: per preset).
HALO_FINE_TUNE: dict[str, str | None] = {
    "--source": "halo_model", "--learning-rate": "1e-3", "--warmup-steps": "50", "--val-every": "200",
    "--checkpoint-every": "100",
}


def preset(scale: str, halo_steps: int | None = None) -> list[str]:
    """The command line of the lognormal preset of ``scale`` or, with ``halo_steps``, of its halo fine-tuning."""
    pixel_size, seed = SCALES[scale]
    name = f"halo_{scale}" if halo_steps is not None else scale
    options = {**BASE, "--output": str(WEIGHTS / f"hybrid_{name}arcmin"), "--pixel-size": pixel_size,
               "--checkpoint-dir": f"/tmp/kappascope_train_{name}", "--seed": seed}
    if halo_steps is None:
        options["--field"] = "lognormal"
    else:
        options.update(HALO_FINE_TUNE)
        options.update({"--init-weights": str(WEIGHTS / f"hybrid_{scale}arcmin"), "--steps": str(halo_steps)})
    return [item for key, value in options.items() if value is not None for item in (key, value)]


PRESETS: dict[str, list[str]] = {
    "0.87": preset("0.87"),
    "0.29": preset("0.29"),
    "halo0.87": preset("0.87", halo_steps=450),
    "halo0.29": preset("0.29", halo_steps=800),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in PRESETS:
        sys.stderr.write(f"usage: python scripts/train_weights.py {{{'|'.join(PRESETS)}}} [kappascope train options]\n")
        return 2
    preset, extra = argv[0], argv[1:]
    command = "python scripts/train_weights.py " + " ".join(argv)
    options = list(PRESETS[preset])
    if "--from-scratch" in extra:
        extra = [item for item in extra if item != "--from-scratch"]
        if "--init-weights" in options:
            at = options.index("--init-weights")
            del options[at:at + 2]
    return train_main(options + extra, command=command)


if __name__ == "__main__":
    sys.exit(main())
