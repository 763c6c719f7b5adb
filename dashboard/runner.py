"""Per-session run controller of the dashboard: a worker thread, a latest-frame slot, pause/step/stop. No UI.

One :class:`RunController` belongs to one browser session (or one notebook app). ``start`` launches a
daemon worker thread that

1. calls ``prepare()`` (build the observation, prior, baselines … — possibly slow, so off the UI thread),
2. iterates ``sample(context, cancel)``, a generator of :class:`core.inference.driver.Snapshot` that runs compiled
   chunks and checks ``cancel`` between chunks (the sampling driver contract),
3. after each snapshot stores it in a one-element slot (the UI reads only the latest frame, so the sampler
   never waits for the page) and, while paused, blocks the generator between chunks.

Because a Python generator only computes when asked for its next item, blocking between ``next()`` calls
pauses the chains exactly at a chunk boundary; *Step* grants one more chunk while paused. ``stop`` sets the
cancel event (honoured by the driver between chunks) and wakes a paused worker. Errors in either stage are
caught and reported as :attr:`RunState.ERROR` with the message; the last completed result
(:attr:`RunController.last_result`) is never overwritten by a failed or stopped run.

The progress estimate is linear in transitions: ``ETA = elapsed · (total − step) / step``.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["RunState", "RunStatus", "RunResult", "RunController"]

logger = logging.getLogger(__name__)


class RunState(str, enum.Enum):
    IDLE = "idle"
    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DONE = "done"
    ERROR = "error"

    @property
    def active(self) -> bool:
        return self in (RunState.PREPARING, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING)


@dataclass(frozen=True)
class RunStatus:
    """What the UI shows about the current run: state, message, progress and ETA."""

    state: RunState
    message: str
    run_id: int
    frame_id: int
    step: int
    total_steps: int
    elapsed_s: float
    eta_s: float | None

    @property
    def progress(self) -> float:
        """Fraction of transitions done, in [0, 1]."""
        return min(1.0, self.step / self.total_steps) if self.total_steps > 0 else 0.0


@dataclass(frozen=True)
class RunResult:
    """A finished run: the prepared context (problem) and its final snapshot."""

    run_id: int
    context: Any
    snapshot: Any
    label: str


class RunController:
    """Runs one sampling job at a time on a background thread; thread-safe, UI-agnostic."""

    _instances: "weakref.WeakSet[RunController]" = weakref.WeakSet()

    @classmethod
    def instances(cls) -> list["RunController"]:
        """Every live controller of this process (the server cancels them all on SIGTERM)."""
        return list(cls._instances)

    def __init__(self, name: str = "session") -> None:
        RunController._instances.add(self)
        self.name = name
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = RunState.IDLE
        self._message = "Ready."
        self._run_id = 0
        self._frame_id = 0
        self._snapshot: Any = None
        self._context: Any = None
        self._paused = False
        self._step_budget = 0
        self._label = ""
        self._started_at = 0.0
        self._total_steps_hint = 0
        self.last_result: RunResult | None = None
        self.results_by_label: dict[str, RunResult] = {}

    # ------------------------------------------------------------------ control
    def start(
        self,
        prepare: Callable[[], Any],
        sample: Callable[[Any, threading.Event], Iterable[Any]] | None,
        *,
        paused: bool = False,
        label: str = "",
        total_steps: int = 0,
    ) -> int:
        """Start a run; returns its id. Raises ``RuntimeError`` when a run is already active.

        With ``sample=None`` only ``prepare`` runs (a preview of the data); the state returns to IDLE.
        """
        if not callable(prepare) or not (sample is None or callable(sample)):
            raise ValueError("prepare must be a callable and sample a callable or None")
        with self._lock:
            if self._state.active:
                raise RuntimeError(f"a run is already {self._state.value}; stop it first")
            self._run_id += 1
            run_id = self._run_id
            self._cancel = threading.Event()
            self._paused = bool(paused)
            self._step_budget = 0
            self._state = RunState.PREPARING
            self._message = "Preparing the observation, prior and baselines…"
            self._snapshot = None
            self._context = None
            self._label = label
            self._started_at = time.monotonic()
            self._total_steps_hint = int(total_steps)
            cancel = self._cancel
            self._thread = threading.Thread(
                target=self._work, args=(run_id, prepare, sample, cancel),
                name=f"kappascope-{self.name}-run{run_id}", daemon=True)
            self._thread.start()
        return run_id

    def pause(self) -> None:
        with self._lock:
            if self._state in (RunState.RUNNING, RunState.PREPARING):
                self._paused = True
                if self._state == RunState.RUNNING:
                    self._state = RunState.PAUSED
                    self._message = "Paused."

    def resume(self) -> None:
        with self._wake:
            if self._state.active and self._state != RunState.STOPPING:
                self._paused = False
                if self._state == RunState.PAUSED:
                    self._state = RunState.RUNNING
                    self._message = "Running…"
                self._wake.notify_all()

    def step(self) -> None:
        """Advance one chunk of a paused run (pausing a running one first)."""
        with self._wake:
            if not self._state.active or self._state == RunState.STOPPING:
                return
            self._paused = True
            self._step_budget += 1
            if self._state == RunState.RUNNING:
                self._state = RunState.PAUSED
            self._wake.notify_all()

    def stop(self, wait: bool = True, timeout: float = 60.0) -> bool:
        """Ask the run to stop at the next chunk boundary; with ``wait`` join the worker.

        Returns True when no worker is left running.
        """
        with self._wake:
            thread = self._thread
            if self._state.active:
                self._cancel.set()
                self._paused = False
                self._state = RunState.STOPPING
                self._message = "Stopping at the end of the current chunk…"
                self._wake.notify_all()
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return thread is None or not thread.is_alive()

    close = stop

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ------------------------------------------------------------------ reading
    @property
    def state(self) -> RunState:
        return self._state

    @property
    def is_active(self) -> bool:
        return self._state.active

    @property
    def context(self) -> Any:
        """The prepared problem of the current run (None until prepared)."""
        return self._context

    def latest(self) -> tuple[int, Any]:
        """``(frame_id, snapshot)`` of the newest frame; frame_id grows by one per stored snapshot."""
        with self._lock:
            return self._frame_id, self._snapshot

    def status(self) -> RunStatus:
        with self._lock:
            snap = self._snapshot
            step = int(getattr(snap, "step", 0) or 0)
            total = int(getattr(snap, "total_steps", 0) or self._total_steps_hint)
            elapsed = float(getattr(snap, "elapsed_s", 0.0)) if snap is not None else time.monotonic() - self._started_at
            if self._state == RunState.IDLE:
                elapsed = 0.0
            eta = None
            if snap is not None and 0 < step < total and self._state in (RunState.RUNNING, RunState.PAUSED):
                eta = elapsed * (total - step) / step
            elif self._state == RunState.DONE:
                eta = 0.0
            return RunStatus(self._state, self._message, self._run_id, self._frame_id, step, total, elapsed, eta)

    # ------------------------------------------------------------------ worker
    def _publish(self, run_id: int, snapshot: Any) -> None:
        with self._lock:
            if run_id != self._run_id:
                return
            self._snapshot = snapshot
            self._frame_id += 1

    def _wait_if_paused(self, cancel: threading.Event) -> None:
        with self._wake:
            while self._paused and self._step_budget == 0 and not cancel.is_set():
                self._wake.wait(0.25)
            if self._step_budget > 0:
                self._step_budget -= 1

    def _finish(self, run_id: int, state: RunState, message: str) -> None:
        with self._lock:
            if run_id != self._run_id:
                return
            self._state = state
            self._message = message
            self._paused = False
            if state == RunState.DONE and self._snapshot is not None:
                result = RunResult(run_id, self._context, self._snapshot, self._label)
                self.last_result = result
                self.results_by_label[self._label] = result

    def _work(self, run_id: int, prepare: Callable[[], Any], sample: Callable[[Any, threading.Event], Iterable[Any]] | None,
              cancel: threading.Event) -> None:
        try:
            context = prepare()
            if sample is None:
                with self._lock:
                    self._context = context
                self._finish(run_id, RunState.IDLE, "Data ready: press Run (or Step).")
                return
            with self._lock:
                self._context = context
                if cancel.is_set():
                    pass
                elif self._paused:
                    self._state, self._message = RunState.PAUSED, "Paused (prepared; press Step or Resume)."
                else:
                    self._state, self._message = RunState.RUNNING, "Compiling and running the chains…"
            if cancel.is_set():
                self._finish(run_id, RunState.STOPPED, "Stopped before sampling started.")
                return
            self._wait_if_paused(cancel)
            done = False
            for snapshot in sample(context, cancel):
                self._publish(run_id, snapshot)
                done = bool(getattr(snapshot, "done", False))
                with self._lock:
                    if self._state == RunState.RUNNING:
                        self._message = "Running…"
                if done or cancel.is_set():
                    break
                self._wait_if_paused(cancel)
            if cancel.is_set() and not done:
                self._finish(run_id, RunState.STOPPED, "Stopped; the chains so far are kept on screen.")
            elif done:
                self._finish(run_id, RunState.DONE, "Done: reached σ_min.")
            else:
                self._finish(run_id, RunState.STOPPED, "The sampler ended without a final snapshot.")
        except Exception as err:  # noqa: BLE001 - every failure must reach the status area
            logger.exception("run %d of %s failed", run_id, self.name)
            self._finish(run_id, RunState.ERROR, f"{type(err).__name__}: {err}")
