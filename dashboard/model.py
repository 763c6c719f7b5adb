"""The run model of one dashboard session: settings, inputs, problem, runner, results and messages. No widgets.

Following Panel's "data store + views" structure, :class:`RunModel` (a ``param.Parameterized``) holds the state
and the actions; the views in :mod:`dashboard.views` only lay widgets out and draw what the model holds.

* ``settings`` — a :class:`~dashboard.settings.DashboardSettings` (URL values applied one by one; the bad ones are
  kept in ``url_problems`` and stay visible, they are not cleared when the preview starts);
* ``inputs`` — uploaded shear/mask arrays and drawn shapes (checked by :mod:`dashboard.uploads`);
* ``controller`` — the per-session :class:`~dashboard.runner.RunController` (worker thread, latest-frame slot);
* ``message`` — the newest :class:`~dashboard.status.Message` for the user (plain text, escaped when shown);
* comparisons — "Compare priors" runs both priors on the same data and seed; "Compare samplers" runs every
  registered sampler on the same problem; each finished variant lands in ``variants`` (label → :class:`Variant`
  with time, NFE, RMSE against the truth and the 95 % coverage ``mean_p |κ_true − κ̄| ≤ 1.96 s``).

Results written by the worker thread (``variants``) are plain attributes with a version counter; the page reads
them on its own event loop (never a param event from the worker thread).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import param

from core.options import sampler_names
from dashboard.problem import Problem, UserInputs, build_problem, sample_snapshots
from dashboard.runner import RunController, RunState
from dashboard.settings import PRIOR_CHOICES, UPLOADED, DashboardSettings
from dashboard.status import Message
from dashboard.uploads import parse_mask_upload, parse_shear_upload

__all__ = ["RunModel", "Variant", "score_against_truth"]

#: Query arguments Bokeh adds itself (never settings).
_BOKEH_ARGS = ("bokeh-autoload-element", "bokeh-app-path", "bokeh-absolute-url", "bokeh-session-id")


@dataclass(frozen=True)
class Variant:
    """One finished run of a comparison."""

    label: str
    problem: Problem
    snapshot: Any
    seconds: float
    nfe: float | None
    rmse: float | None
    coverage95: float | None

    def row(self) -> dict[str, Any]:
        return {"run": self.label, "time (s)": round(self.seconds, 1),
                "NFE / chain": None if self.nfe is None else round(self.nfe),
                "RMSE": None if self.rmse is None else round(self.rmse, 5),
                "95 % coverage": None if self.coverage95 is None else round(self.coverage95, 3)}


def score_against_truth(problem: Problem, snapshot: Any) -> tuple[float | None, float | None]:
    """``(RMSE of the posterior mean, fraction of observed pixels with |truth − mean| ≤ 1.96 std)`` or Nones."""
    if problem.truth is None:
        return None, None
    truth, mean, std = (np.asarray(a, np.float64) for a in (problem.truth, snapshot.mean, snapshot.std))
    observed = problem.mask > 0
    rmse = float(np.sqrt(np.mean((mean - truth) ** 2)))
    coverage = float(np.mean((np.abs(truth - mean) <= 1.96 * std)[observed]))
    return rmse, coverage


class RunModel(param.Parameterized):
    """State and actions of one session (see the module docstring)."""

    settings = param.ClassSelector(class_=DashboardSettings, doc="The settings of the next run.")
    message = param.ClassSelector(class_=Message, allow_None=True, doc="The newest message for the user.")
    url_problems = param.List(default=[], item_type=str, doc="Bad URL settings (named, kept visible).")

    def __init__(self, settings: DashboardSettings | None = None, query: Mapping[str, Any] | None = None,
                 sample_fn: Callable[..., Iterator[Any]] | None = None, **params: Any) -> None:
        super().__init__(settings=settings or DashboardSettings(), **params)
        self.controller = RunController()
        #: ``(problem, cancel) -> iterator of Snapshot``; the sampling pipeline by default.
        self.sample_fn = sample_fn or sample_snapshots
        self.inputs = UserInputs()
        self.inputs_version = 0
        self._prepared: tuple[Any, Problem] | None = None
        self.variants: dict[str, Variant] = {}
        self.variants_version = 0
        self.comparison = ""  # "priors" | "samplers" | "" (the kind of the last comparison started)
        if query:
            self.apply_query(query)

    # ------------------------------------------------------------------ messages
    def notify(self, text: str, level: str = "error") -> None:
        self.message = Message(str(text), level)

    def clear_message(self) -> None:
        self.message = None

    def apply_query(self, query: Mapping[str, Any]) -> list[str]:
        """Apply URL settings one by one; the bad ones are named in ``url_problems`` (the valid ones are kept)."""
        values = {k: v for k, v in query.items() if k not in _BOKEH_ARGS}
        problems = self.settings.update_from_mapping(values)
        self.url_problems = [f"URL: {p}" for p in problems]
        return problems

    # ------------------------------------------------------------------ runs
    def _problem_key(self) -> tuple:
        return self.settings.run_key() + (("inputs", self.inputs_version),)

    def _make_prepare(self, settings: DashboardSettings | None = None) -> Callable[[], Problem]:
        settings = settings or self.settings
        key = settings.run_key() + (("inputs", self.inputs_version),)
        frozen = DashboardSettings(**{k: v for k, v in settings.as_dict().items()})
        inputs = UserInputs(**vars(self.inputs))
        cached = self._prepared

        def prepare() -> Problem:
            if cached is not None and cached[0] == key:
                return cached[1]
            problem = build_problem(frozen, inputs)
            self._prepared = (key, problem)
            return problem

        return prepare

    def _start(self, sample: Any = "default", paused: bool = False, prepare: Callable[[], Problem] | None = None,
               label: str | None = None) -> bool:
        if self.controller.is_active:
            self.notify("A run is already active in this session; stop it first.", "warning")
            return False
        try:
            self.settings.validate()
        except ValueError as err:
            self.notify(f"Impossible settings: {err}")
            return False
        self.clear_message()
        if sample == "default":
            sample = self.sample_fn
        self.controller.start(prepare or self._make_prepare(), sample, paused=paused,
                              label=label or self.settings.prior, total_steps=self.settings.total_steps)
        return True

    def preview(self) -> bool:
        """Prepare the data, prior and baselines in the background without sampling."""
        return self._start(sample=None)

    def run(self) -> bool:
        if self.controller.state == RunState.PAUSED:
            self.resume()
            return True
        self.comparison = ""
        return self._start()

    def pause(self) -> None:
        self.controller.pause()

    def resume(self) -> None:
        self.controller.resume()

    def stop(self) -> None:
        self.controller.stop(wait=False)

    def step(self) -> None:
        """One chunk; starts a paused run when none is active."""
        if not self.controller.is_active or self.controller.state == RunState.STOPPING:
            if self.controller.state == RunState.STOPPING or not self._start(paused=True):
                return
        self.controller.step()

    def close(self) -> None:
        self.controller.stop(wait=False)

    # ------------------------------------------------------------------ comparisons
    def _variants_job(self, variants: list[tuple[str, Callable[[], Problem], dict[str, Any]]]) -> Callable:
        """A sample function running each ``(label, prepare, overrides)`` in turn on the worker thread."""
        def sample(first_problem: Problem, cancel: threading.Event) -> Iterator[Any]:
            for i, (label, prepare, overrides) in enumerate(variants):
                problem = first_problem if i == 0 else prepare()
                started = time.monotonic()
                for snapshot in self.sample_fn(problem, cancel, **overrides) if overrides else self.sample_fn(problem, cancel):
                    if not getattr(snapshot, "done", False):
                        yield snapshot
                    else:  # record before yielding: the runner stops asking after the last final snapshot
                        self._record(label, problem, snapshot, time.monotonic() - started, cancel)
                        yield snapshot if i == len(variants) - 1 else dataclasses.replace(snapshot, done=False)
                    if cancel.is_set():
                        return
        return sample

    def _record(self, label: str, problem: Problem, snapshot: Any, seconds: float, cancel: threading.Event) -> None:
        """Keep a finished variant, unless its run was stopped (a chunk finished after Stop is never shown)."""
        rmse, coverage = score_against_truth(problem, snapshot)
        nfe = getattr(snapshot, "nfe", None)
        variant = Variant(label, problem, snapshot, float(getattr(snapshot, "elapsed_s", seconds)),
                          None if nfe is None else float(nfe), rmse, coverage)

        def keep() -> None:
            self.variants[label] = variant
            self.variants_version += 1

        self.controller.commit(cancel, keep)

    def _start_comparison(self, kind: str, variants: list[tuple[str, Callable[[], Problem], dict[str, Any]]]) -> bool:
        if self.controller.is_active:
            self.notify("A run is already active in this session; stop it first.", "warning")
            return False
        self.variants = {}
        self.variants_version += 1
        self.comparison = kind
        return self._start(sample=self._variants_job(variants), prepare=variants[0][1], label=f"compare {kind}")

    def compare_priors(self) -> bool:
        """Both priors on the same data and seed (the settings' sampler; each prior's default sampler otherwise)."""
        variants = []
        for prior in PRIOR_CHOICES:
            settings = DashboardSettings(**{**self.settings.as_dict(), "prior": prior, "sampler": self.settings.sampler})
            variants.append((prior, self._make_prepare(settings), {}))
        return self._start_comparison("priors", variants)

    def compare_samplers(self, names: tuple[str, ...] | None = None) -> bool:
        """Every registered sampler (with its default options) on the same problem, seed and schedule."""
        prepare = self._make_prepare()
        variants = [(name, prepare, {"sampler": name}) for name in (names or sampler_names())]
        return self._start_comparison("samplers", variants)

    def comparison_rows(self) -> list[dict[str, Any]]:
        return [v.row() for v in self.variants.values()]

    # ------------------------------------------------------------------ inputs
    def load_shear(self, data: bytes, filename: str) -> bool:
        try:
            shear, std = parse_shear_upload(data, filename or "upload")
        except ValueError as err:
            self.notify(str(err))
            return False
        self.inputs.shear, self.inputs.shear_std, self.inputs.shear_name = shear, std, filename or ""
        self.inputs_version += 1
        self.settings.param.update(data_source=UPLOADED, noise_model="std_maps" if std is not None else "galaxy_density")
        self.notify(f"Loaded shear maps {shear.shape[1]}×{shear.shape[2]} from {self.inputs.shear_name}"
                    f"{' with std maps' if std is not None else ''}; press Run.", "success")
        return True

    def load_mask(self, data: bytes, filename: str) -> bool:
        try:
            mask = parse_mask_upload(data, filename or "mask")
        except ValueError as err:
            self.notify(str(err))
            return False
        self.inputs.mask, self.inputs.mask_name = mask, filename or ""
        self.inputs_version += 1
        self.settings.mask = "uploaded"
        self.notify(f"Loaded mask {mask.shape[0]}×{mask.shape[1]} ({mask.mean():.0%} observed) from "
                    f"{self.inputs.mask_name}; press Run.", "success")
        return True

    def use_drawn_mask(self, boxes: dict, polygons: dict) -> None:
        self.inputs.boxes, self.inputs.polygons = boxes, polygons
        self.inputs_version += 1
        self.settings.mask = "drawn"
        count = len(boxes.get("x0", [])) + len(polygons.get("xs", []))
        self.notify(f"Mask from {count} drawn shape(s); press Run (or Step) to use it.", "info")

    # ------------------------------------------------------------------ results
    def result(self) -> tuple[Problem, Any]:
        """``(problem, snapshot)`` on screen now, else of the last finished run; ``ValueError`` when none."""
        frame = self.controller.latest()[1]
        problem = self.controller.context
        if frame is not None and problem is not None:
            return problem, frame
        if self.controller.last_result is not None:
            return self.controller.last_result.context, self.controller.last_result.snapshot
        raise ValueError("no samples yet: run the sampler first")
