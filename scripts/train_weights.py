"""Train the score-network weights shipped in ``assets/weights/`` (thin wrapper over :mod:`core.priors.training`).

Presets (the exact commands are also recorded in each weight file's metadata JSON and in
``assets/weights/README.md``)::

    python scripts/train_weights.py 0.87     # 64×64 lognormal maps at 104.4/120 arcmin (dashboard + COSMOS CPU mode)
    python scripts/train_weights.py 0.29     # 64×64 maps at 0.29 arcmin (native COSMOS GPU mode)

Extra arguments are passed on to ``kappascope train`` and override the preset, e.g.
``python scripts/train_weights.py 0.87 --steps 200 --output /tmp/test``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.priors.training import train_main  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "weights"

PRESETS: dict[str, list[str]] = {
    "0.87": [
        "--output", str(WEIGHTS / "hybrid_0.87arcmin"),
        "--pixel-size", repr(104.4 / 120), "--npix", "64", "--field", "lognormal", "--z-source", "1.0",
        "--channels", "16,32,64", "--blocks-per-scale", "2",
        "--steps", "3000", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-steps", "100",
        "--sigma-min", "1e-3", "--sigma-max", "1.0", "--sigma-small", "0.05", "--small-fraction", "0.3",
        "--val-maps", "64", "--val-every", "250", "--checkpoint-every", "250",
        "--checkpoint-dir", "/tmp/kappascope_train_0.87", "--seed", "0",
    ],
    "0.29": [
        "--output", str(WEIGHTS / "hybrid_0.29arcmin"),
        "--pixel-size", "0.29", "--npix", "64", "--field", "lognormal", "--z-source", "1.0",
        "--channels", "16,32,64", "--blocks-per-scale", "2",
        "--steps", "3000", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-steps", "100",
        "--sigma-min", "1e-3", "--sigma-max", "1.0", "--sigma-small", "0.05", "--small-fraction", "0.3",
        "--val-maps", "64", "--val-every", "250", "--checkpoint-every", "250",
        "--checkpoint-dir", "/tmp/kappascope_train_0.29", "--seed", "1",
    ],
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in PRESETS:
        sys.stderr.write(f"usage: python scripts/train_weights.py {{{'|'.join(PRESETS)}}} [kappascope train options]\n")
        return 2
    preset, extra = argv[0], argv[1:]
    command = "python scripts/train_weights.py " + " ".join(argv)
    return train_main(PRESETS[preset] + extra, command=command)


if __name__ == "__main__":
    sys.exit(main())
