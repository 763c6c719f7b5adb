r"""``kappascope sample``: posterior samples of the convergence κ from observed shear γ = M(Pκ + n), written as FITS.

The problem (observation → likelihood → prior → posterior) is built by :func:`core.pipeline.build_problem` and run by
:func:`core.pipeline.run` with the sampler named by ``--sampler`` (the registry
:mod:`core.inference.samplers.registry`; each registered sampler's own options are flags here, generated from its
:class:`~core.options.Option` s). The output FITS file holds the image HDUs

* ``MEAN``, ``STD``, ``SIGNIFICANCE`` — per-pixel posterior mean ``m``, standard deviation ``s`` (over the chains,
  ``ddof = 1``) and ``m/s`` (:func:`core.analysis.summaries.posterior_summary`);
* ``SAMPLES`` — the ``(C, N, N)`` cube of final chain states (one posterior sample per chain);
* ``KS`` — the Kaiser–Squires E-mode map (masked pixels zeroed, Gaussian smoothing ``--ks-smoothing``);
* ``WIENER`` — the Wiener filter ``(S⁻¹ + PᵀN⁻¹P)⁻¹PᵀN⁻¹γ`` with the prior's power map (computed once per run; it is
  also the chains' initial centre);
* ``MASK`` — the observed-pixel mask;

each with the celestial WCS of the input and a primary header recording the software version, date, command line,
input files, every setting, the seed and the run diagnostics (:mod:`core.analysis.diagnostics`). The file is written
to a temporary name in the output folder and renamed when complete, so an error or Ctrl-C never leaves a partial file;
the folder is checked for writing before any work. The computation runs on a worker thread while the main thread
waits (:func:`run_interruptibly`): Ctrl-C ends the command with exit status 130 within a fraction of a second, even in
the middle of a transition that takes seconds (a compiled chunk cannot be interrupted; it is abandoned).

A run whose chains never moved, or whose Metropolis acceptance stayed ≈ 0 (e.g. ``--step-size 1e30``), is
degenerate: its "samples" are the initial state. It is reported and exits 1 unless ``--allow-degenerate``.
"""
from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from core import options as vocab
from core.cli.args import (
    InputError,
    add_option,
    bounded_float,
    finite_float,
    non_negative_float,
    positive_float,
)

__all__ = ["OUTPUT_HDUS", "add_sample_parser", "usage_checks", "file_checks", "run_sample", "run_interruptibly",
           "write_atomically"]

logger = logging.getLogger("kappascope")

#: image HDUs of the file written by ``kappascope sample``, in order
OUTPUT_HDUS = ("MEAN", "STD", "SIGNIFICANCE", "KS", "WIENER", "MASK", "SAMPLES")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")
INPUT_FLAGS = ("shear", "shear_e2", "catalogue", "mask", "std", "std_e2", "cl_file")


# ------------------------------------------------------------------------------------------- parser
def _sampler_options() -> dict[str, tuple[vocab.Option, list[str]]]:
    """Every option of every registered sampler (name → (Option, samplers taking it)), registry order."""
    out: dict[str, tuple[vocab.Option, list[str]]] = {}
    for name in vocab.sampler_names():
        for opt in vocab.sampler_spec(name).options:
            if opt.name in out:
                out[opt.name][1].append(name)
            else:
                out[opt.name] = (opt, [name])
    return out


#: older spellings kept as aliases of the generated flags
_ALIASES = {"num_leapfrog_steps": ("--leapfrog",), "num_levels": ("--levels",), "num_chains": ("--chains",),
            "final_denoise": ("--denoise",)}


def add_sample_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sample",
        help="sample the posterior of the convergence map given shear maps, a catalogue or the shipped COSMOS field",
        description=(
            "Sample the Bayesian posterior of the convergence map kappa given noisy, masked shear by annealed "
            "score-based MCMC, and write one FITS file with the posterior MEAN, STD, SIGNIFICANCE, the SAMPLES cube, "
            "the Kaiser-Squires (KS) and Wiener (WIENER) maps and the MASK, with WCS and provenance."
        ),
        epilog=(
            "examples:\n"
            "  kappascope sample --cosmos --npix 90 --output cosmos_kappa.fits\n"
            "  kappascope sample --shear shear.fits --sigma-e 0.26 --n-gal 30 --pixel-size 1 --output kappa.fits\n"
            "  kappascope sample --catalogue cat.fits --npix 120 --pixel-size 0.87 --prior hybrid --output kappa.fits\n"
            "exit status: 0 success, 1 input error or degenerate run, 2 usage error, 130 interrupted"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("input shear (give --shear, --catalogue or --cosmos)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--shear", metavar="FILE",
                     help="FITS shear maps: a (2, N, N) cube, two HDUs named E1/E2 (or G1/G2), or the gamma1 image "
                          "when --shear-e2 gives gamma2; N must be even")
    src.add_argument("--catalogue", "--catalog", metavar="FILE",
                     help="FITS galaxy table with RA, DEC (deg), E1, E2 and optionally WEIGHT columns, binned onto "
                          "--npix x --npix pixels of --pixel-size arcmin (the mask and noise maps come from the counts)")
    src.add_argument("--cosmos", action="store_true",
                     help="the real HST/ACS COSMOS field shipped with kappascope (104.4 arcmin square), rebinned to "
                          "--npix pixels (a divisor of 360; default 90)")
    g.add_argument("--shear-e2", metavar="FILE", help="FITS image of the second shear component (with --shear FILE for the first)")
    npix = vocab.option("npix")
    g.add_argument("--npix", type=_even(npix), metavar="N",
                   help=f"map side in pixels for --catalogue binning or --cosmos; even, {npix.describe()}")
    g.add_argument("--pixel-size", type=bounded_float(vocab.MIN_PIXEL_ARCMIN, vocab.MAX_PIXEL_ARCMIN, "arcmin"),
                   metavar="ARCMIN",
                   help=f"pixel side in arcmin, in [{vocab.MIN_PIXEL_ARCMIN:g}, {vocab.MAX_PIXEL_ARCMIN:g}]: required "
                        "with --catalogue; with --shear it defaults to the file's WCS pixel scale (and overrides it)")
    g.add_argument("--center", nargs=2, type=finite_float, metavar=("RA", "DEC"),
                   help="grid centre in degrees for --catalogue binning (default: median RA and DEC of the galaxies)")
    g.add_argument("--ra-col", default="RA", help="catalogue column of right ascension in degrees")
    g.add_argument("--dec-col", default="DEC", help="catalogue column of declination in degrees")
    g.add_argument("--e1-col", default="E1", help="catalogue column of the first ellipticity component")
    g.add_argument("--e2-col", default="E2", help="catalogue column of the second ellipticity component")
    g.add_argument("--weight-col", default="WEIGHT",
                   help="catalogue column of shape weights ('none' for unit weights; unit weights are also used "
                        "when the default column is absent)")
    g.add_argument("--mask", metavar="FILE",
                   help="FITS 0/1 mask of observed pixels (non-zero = observed), same N x N as the maps; default: "
                        "pixels with data (non-zero shear, or at least one galaxy)")

    g = p.add_argument_group("noise (with --shear give --std, or --sigma-e and --n-gal)")
    g.add_argument("--std", metavar="FILE",
                   help="FITS per-pixel noise standard deviation of the shear: one (N, N) image for both components, "
                        "a (2, N, N) cube, or the first component when --std-e2 gives the second; finite and positive "
                        "inside the observed area (anything outside it is ignored)")
    g.add_argument("--std-e2", metavar="FILE", help="FITS noise standard deviation of the second shear component")
    g.add_argument("--sigma-e", type=positive_float,
                   help="intrinsic ellipticity dispersion per component (uniform noise sigma_e/sqrt(n_gal*A_pix))")
    g.add_argument("--n-gal", type=positive_float, metavar="PER_ARCMIN2",
                   help="effective galaxy density in galaxies per square arcminute (with --sigma-e)")

    g = p.add_argument_group("prior and theory spectrum")
    g.add_argument("--prior", default="gaussian", metavar="|".join(vocab.PRIORS) + "|PATH",
                   help="'gaussian' (theory C_ell), 'hybrid' (Gaussian + the shipped score network for this pixel "
                        "scale) or the path of trained weights (STEM.weights.h5 with its STEM.json) (default: gaussian)")
    theory = g.add_mutually_exclusive_group()
    theory.add_argument("--z-source", type=positive_float,
                        help="source-plane redshift of the Planck18 convergence C_ell computed with pyccl (default: 1.0, "
                             "or the training redshift of hybrid weights)")
    theory.add_argument("--cl-file", metavar="FILE",
                        help="tabulated convergence spectrum: two columns (ell, C_ell) as text, .npy or a FITS table")

    g = p.add_argument_group("annealing schedule")
    for opt in vocab.SCHEDULE_OPTIONS:
        add_option(g, opt, *_ALIASES.get(opt.name, ()))

    g = p.add_argument_group("run")
    add_option(g, vocab.option("sampler"), help="posterior sampler: " + "; ".join(
        f"{n} = {vocab.sampler_spec(n).summary}" for n in vocab.sampler_names()))
    for name in ("num_chains", "seed", "init", "final_denoise"):
        add_option(g, vocab.option(name), *_ALIASES.get(name, ()))
    add_option(g, vocab.option("chunk_seconds"))
    g.add_argument("--xla", action="store_true", help="XLA-compile the sampling chunks (faster on GPUs)")
    g.add_argument("--allow-degenerate", action="store_true",
                   help="write the output even when the chains never moved or the acceptance stayed ~0 (such a run "
                        "otherwise ends with exit status 1)")

    g = p.add_argument_group("sampler options (each applies to the samplers named in brackets; default: the sampler's)")
    for opt, samplers in _sampler_options().values():
        add_option(g, opt, *_ALIASES.get(opt.name, ()), default=None, help=f"{opt.help} [{', '.join(samplers)}]")

    g = p.add_argument_group("output")
    g.add_argument("--output", "-o", required=True, metavar="OUT.fits",
                   help="FITS file to write (.fits, .fit, .fts or .fits.gz); its folder must exist and be writable")
    g.add_argument("--overwrite", action="store_true", help="replace OUT.fits if it exists")
    g.add_argument("--ks-smoothing", type=non_negative_float, default=1.0, metavar="ARCMIN",
                   help="FWHM of the Gaussian smoothing of the KS map, 0 for none (default: %(default)s)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary on stdout")
    g.add_argument("--verbose", "-v", action="store_true",
                   help="log progress messages (INFO level) and let TensorFlow's start-up messages through")
    g.add_argument("--debug", action="store_true", help="show full tracebacks on errors (implies TensorFlow's messages)")
    p.set_defaults(sample_parser=p)
    return p


def _even(opt: vocab.Option) -> Callable[[str], int]:
    from core.cli.args import option_type

    check = option_type(opt)

    def convert(text: str) -> int:
        value = check(text)
        if value % 2:
            raise argparse.ArgumentTypeError(f"expected an even integer, got {text!r}")
        return value

    convert.__name__ = "integer"
    return convert


# ------------------------------------------------------------------------------------------- validation
def given_sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler options the user typed (``None`` = not given, left to the sampler)."""
    return {name: getattr(args, name) for name in _sampler_options() if getattr(args, name, None) is not None}


def usage_checks(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Consistency of the sample options (argparse ``error`` → exit status 2)."""
    if args.shear_e2 and not args.shear:
        parser.error("--shear-e2 needs --shear FILE for the first component")
    if args.catalogue:
        if args.npix is None or args.pixel_size is None:
            parser.error("--catalogue needs --npix and --pixel-size")
    elif args.cosmos:
        for flag, value in (("--pixel-size", args.pixel_size), ("--center", args.center), ("--mask", args.mask),
                            ("--std", args.std), ("--sigma-e", args.sigma_e)):
            if value is not None:
                parser.error(f"{flag} does not apply to --cosmos (the shipped field has its own grid, mask and noise)")
    else:
        if args.npix is not None:
            parser.error("--npix only applies to --catalogue and --cosmos (the map size comes from the shear file)")
        if args.center is not None:
            parser.error("--center only applies to --catalogue")
    if args.std_e2 and not args.std:
        parser.error("--std-e2 needs --std FILE for the first component")
    if (args.sigma_e is None) != (args.n_gal is None):
        parser.error("give --sigma-e and --n-gal together")
    if args.std and args.sigma_e is not None:
        parser.error("give either --std or --sigma-e/--n-gal, not both")
    if args.shear and not args.std and args.sigma_e is None:
        parser.error("--shear needs a noise model: --std FILE, or --sigma-e and --n-gal")
    if not args.sigma_min < args.sigma_max:
        parser.error(f"--sigma-min ({args.sigma_min:g}) must be smaller than --sigma-max ({args.sigma_max:g})")
    if args.schedule != "geometric" and args.num_levels < 2:
        parser.error(f"a {args.schedule} schedule needs --levels >= 2")
    total = args.num_levels * args.steps_per_level
    if total > vocab.MAX_TRANSITIONS:
        parser.error(f"--levels x --steps-per-level = {total} transitions is over the cap of {vocab.MAX_TRANSITIONS}")
    spec = vocab.sampler_spec(args.sampler)
    takes = {o.name for o in spec.options}
    for name, value in given_sampler_options(args).items():
        flag = "--" + name.replace("_", "-")
        if name not in takes:
            parser.error(f"{flag} does not apply to --sampler {args.sampler} (its options: "
                         f"{', '.join('--' + n.replace('_', '-') for n in sorted(takes)) or 'none'})")
        try:  # the same name may carry other bounds for another sampler: check against this sampler's own
            spec.option(name).validate(value)
        except ValueError as err:
            parser.error(f"{flag} for --sampler {args.sampler}: {err}")
    if not args.output.lower().endswith(FITS_SUFFIXES):
        parser.error(f"--output must end in one of {', '.join(FITS_SUFFIXES)}, got {args.output!r}")


def file_checks(args: argparse.Namespace) -> None:
    """Input/output checks done before importing TensorFlow and before any sampling (exit status 1)."""
    for name in INPUT_FLAGS:
        path = getattr(args, name)
        if path is not None:
            flag = "--" + name.replace("_", "-")
            if not Path(path).exists():
                raise InputError(f"{flag} file {path!r} does not exist")
            if not Path(path).is_file():
                raise InputError(f"{flag} {path!r} is not a file")
    if args.prior not in vocab.PRIORS:
        stem = Path(args.prior)
        candidates = [stem, Path(str(stem) + ".weights.h5"), Path(str(stem) + ".json")]
        if not any(c.exists() for c in candidates):
            raise InputError(f"--prior must be one of {', '.join(vocab.PRIORS)} or a weights file; {args.prior!r} "
                             "does not exist")
    out = Path(args.output)
    folder = out.parent
    if not folder.exists():
        raise InputError(f"--output {args.output!r}: its folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise InputError(f"--output {args.output!r}: {str(folder)!r} is not a folder")
    if out.is_dir():
        raise InputError(f"--output {args.output!r} is a folder")
    if out.exists() and not args.overwrite:
        raise InputError(f"--output {args.output!r} exists; pass --overwrite to replace it")
    try:  # the real test of "writable": create (and remove) a file there, as the final write will
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"--output {args.output!r}: cannot write in {str(folder)!r} "
                         f"({err.strerror or err})") from None


# ------------------------------------------------------------------------------------------- run
def _progress(total: int, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="sampling", disable=quiet, file=sys.stderr, dynamic_ncols=True)


def _inputs(args: argparse.Namespace) -> dict[str, str]:
    return {name: str(getattr(args, name)) for name in INPUT_FLAGS if getattr(args, name)}


def run_sample(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run ``kappascope sample`` for parsed, usage-checked arguments; returns the summary dict.

    Raises :class:`InputError` / ``ValueError`` / ``FloatingPointError`` for bad inputs; writes nothing unless the
    whole run succeeds (temporary file + atomic rename). The computation runs on a worker thread
    (:func:`run_interruptibly`), so Ctrl-C raises ``KeyboardInterrupt`` here at once, even inside a long compiled
    chunk; the file is written on this (the main) thread, after the computation, so an interrupt never leaves it
    half-written or replaced.
    """
    file_checks(args)
    cancel = threading.Event()
    result, write = run_interruptibly(lambda: _compute(args, command, cancel), cancel)
    write()
    return result


def _compute(args: argparse.Namespace, command: str,
             cancel: threading.Event) -> tuple[dict[str, Any], Callable[[], None]]:
    """Everything of ``run_sample`` but the write: ``(summary, write)``; sampling stops between chunks once
    ``cancel`` is set."""
    import numpy as np

    import core
    from core import pipeline
    from core.analysis.baselines import kaiser_squires_map
    from core.analysis.diagnostics import degenerate_run, run_diagnostics
    from core.analysis.summaries import posterior_summary
    from core.cli.inputs import read_observation
    from core.cli.priors import prior_settings
    from core.data.fits_io import write_maps_fits

    start = time.perf_counter()
    obs, info = read_observation(args)
    geometry = obs.geometry
    prior_kwargs, prior_info = prior_settings(args, geometry)
    problem = pipeline.build_problem(obs.shear, obs.noise_std, obs.mask, geometry, **prior_kwargs)
    schedule = pipeline.make_schedule(args.schedule, sigma_max=args.sigma_max, sigma_min=args.sigma_min,
                                      num_levels=args.num_levels, steps_per_level=args.steps_per_level)
    sampler_options = given_sampler_options(args)
    logger.info("sampling %s with %d chains, %d transitions (%s)", geometry, args.num_chains, schedule.total_steps,
                prior_info)
    sampler = pipeline.make_sampler(problem, args.sampler, schedule, **sampler_options)
    snapshots = pipeline.run(problem, sampler=sampler, num_chains=args.num_chains,
                             init=args.init, seed=args.seed, chunk_seconds=args.chunk_seconds,
                             final_denoise=args.final_denoise, jit_compile=args.xla, cancel=cancel)
    last = None
    acceptances: list[float] = []
    with _progress(schedule.total_steps, args.quiet) as bar:
        for snap in snapshots:
            bar.set_postfix(sigma=f"{snap.sigma:.3g}", acc=f"{snap.acceptance:.2f}", refresh=False)
            bar.update(snap.step - bar.n)
            acceptances.append(snap.acceptance)
            last = snap
    if last is None or not last.done:
        raise InputError("sampling stopped before completion")
    chains = last.chains.astype(np.float32)
    diagnostics = run_diagnostics(chains, problem.power_map, geometry, mask=obs.mask)
    degenerate = degenerate_run(last.traces, acceptances, adjusted=getattr(sampler, "metropolis", None))
    summary = posterior_summary(chains)
    ks = kaiser_squires_map(obs.shear, geometry, mask=obs.mask, smoothing_fwhm_arcmin=args.ks_smoothing)[0].numpy()
    maps = {
        "MEAN": summary.mean,
        "STD": summary.std,
        "SIGNIFICANCE": summary.significance,
        "KS": ks.astype(np.float32),
        "WIENER": np.asarray(problem.wiener, dtype=np.float32),
        "MASK": obs.mask.astype(np.float32),
    }
    trace_acc = last.traces.get("acceptance", np.asarray(acceptances))
    sampler_settings = _sampler_settings(sampler)
    provenance: dict[str, Any] = {
        "command": command,
        "software": f"kappascope {core.__version__}",
        "inputs": _inputs(args),
        **info,
        **prior_info,
        "npix": geometry.npix,
        "pixel_size_arcmin": geometry.pixel_size_arcmin,
        "observed_fraction": float(obs.mask.mean()),
        "noise": "std maps" if args.std else ("sigma_e/n_gal" if args.sigma_e is not None else "catalogue counts"),
        "sigma_e": args.sigma_e,
        "n_gal_arcmin2": args.n_gal,
        "schedule": args.schedule,
        "sigma_max": args.sigma_max,
        "sigma_min": args.sigma_min,
        "levels": args.num_levels,
        "steps_per_level": args.steps_per_level,
        "sampler": args.sampler,
        **sampler_settings,
        "chains": args.num_chains,
        "init": args.init,
        "denoise": args.final_denoise,
        "seed": args.seed,
        "ks_smoothing_fwhm_arcmin": args.ks_smoothing,
        "mean_acceptance": float(np.mean(trace_acc)) if len(trace_acc) else float("nan"),
        "diagnostics": diagnostics.as_dict(),
        "degenerate": degenerate or "",
        "elapsed_s": round(time.perf_counter() - start, 3),
    }
    provenance = {k: v for k, v in provenance.items() if v is not None}
    result = {"output": str(args.output), "npix": geometry.npix, "pixel_size_arcmin": geometry.pixel_size_arcmin,
              "chains": args.num_chains, "transitions": schedule.total_steps,
              "mean_acceptance": provenance["mean_acceptance"], "elapsed_s": provenance["elapsed_s"],
              "diagnostics": diagnostics.as_dict(), "explanations": diagnostics.lines()}
    if degenerate and not args.allow_degenerate:
        raise DegenerateRun(degenerate)
    if degenerate:
        result["degenerate"] = degenerate
    return result, lambda: write_atomically(Path(args.output), maps, obs.wcs, provenance, chains, write_maps_fits)


#: seconds between checks of the main thread while the worker computes (Ctrl-C is handled at once regardless)
POLL_S = 0.25
#: how long an interrupted run waits for its worker to leave a chunk before giving up on it
JOIN_AFTER_INTERRUPT_S = 0.3
#: exit status of an interrupted run (128 + SIGINT)
INTERRUPTED_STATUS = 130


def run_interruptibly(work: Callable[[], Any], cancel: threading.Event) -> Any:
    """``work()`` on a daemon worker thread while this thread waits in short timeouts; its value or its exception.

    Why: a running compiled chunk (``tf.function``) cannot be interrupted, and Python delivers Ctrl-C
    (``KeyboardInterrupt``) only to the main thread, between bytecodes: a main thread inside a chunk would see it
    only when the chunk ends (seconds per transition with a learned prior at 360²). Waiting here instead, the
    interrupt arrives at once; then ``cancel`` is set (the driver stops between chunks), the worker gets
    :data:`JOIN_AFTER_INTERRUPT_S` to finish and ``KeyboardInterrupt`` is re-raised. A worker still inside its chunk
    is abandoned: an ``atexit`` hook, run after the exit message, ends the process with ``os._exit``
    (:data:`INTERRUPTED_STATUS`, streams flushed) if it is still running then, because the interpreter's and
    TensorFlow's teardown would wait for the chunk or abort while it runs. Nothing was written by then: the
    output is written only by the caller, on the main thread, after ``work`` returned.
    """
    box: dict[str, Any] = {}
    # Completion is tracked with an Event, never with ``Thread.is_alive``: on Python ≤ 3.12 a ``Thread.join`` that
    # Ctrl-C interrupts releases the running thread's state lock and marks it stopped (bpo-45274), so ``is_alive``
    # says False for a worker still inside its chunk.
    finished = threading.Event()

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            box["error"] = err
        finally:
            finished.set()

    worker = threading.Thread(target=target, name="kappascope-sample", daemon=True)
    worker.start()
    try:
        while not finished.wait(POLL_S):
            pass
    except KeyboardInterrupt:
        cancel.set()
        # registered before waiting, so a second Ctrl-C during the wait still ends the process at once
        atexit.register(_exit_now_if_running, finished, INTERRUPTED_STATUS)
        if not finished.wait(JOIN_AFTER_INTERRUPT_S):
            logger.info("interrupted inside a compiled chunk; the process exits without waiting for it")
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def _exit_now_if_running(finished: threading.Event, status: int) -> None:
    """(atexit) End the process at once while the worker is still inside a compiled chunk (``finished`` unset)."""
    if not finished.is_set():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)


class DegenerateRun(InputError):
    """The chains never moved or the acceptance stayed ≈ 0 (exit 1 unless ``--allow-degenerate``)."""

    def __str__(self) -> str:
        return f"degenerate run: {self.args[0]}; no output written (pass --allow-degenerate to write it anyway)"


def _sampler_settings(sampler: Any) -> dict[str, Any]:
    """The sampler's resolved options (``"auto"`` replaced by what was used) for provenance."""
    settings = {k: v for k, v in sampler.settings().items() if k not in ("sampler", "schedule", "num_transitions")}
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in settings.items()}


def write_atomically(path: Path, maps: dict[str, Any], wcs: Any, provenance: dict[str, Any], samples: Any,
                     writer: Any) -> None:
    """Write to a temporary file next to ``path`` and rename it into place (removed on any failure).

    An ``OSError`` is reported with the user's ``path``, never the temporary name.
    """
    suffix = ".fits.gz" if path.name.lower().endswith(".gz") else ".fits"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as err:
        raise InputError(f"--output {str(path)!r}: cannot write in {str(path.parent)!r} ({err.strerror or err})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp, maps, wcs=wcs, provenance=provenance, samples=samples, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except OSError as err:
        raise InputError(f"--output {str(path)!r}: could not write it ({err.strerror or err})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def print_summary(result: dict[str, Any]) -> None:
    """The diagnostics' one-line explanations, then the summary as one JSON line (the last line of stdout)."""
    for line in result.get("explanations", []):
        sys.stdout.write(line + "\n")
    sys.stdout.write(json.dumps({k: v for k, v in result.items() if k != "explanations"}) + "\n")
