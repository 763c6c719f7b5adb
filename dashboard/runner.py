"""Per-session run controller of the dashboard: a worker thread, a latest-frame slot, pause/step/stop. No UI.

One :class:`RunController` belongs to one browser session (or one notebook app). ``start`` launches a
daemon worker thread that

1. calls ``prepare()`` (build the observation, prior, baselines … — possibly slow, so off the UI thread),
2. iterates ``sample(context, cancel)``, a generator of :class:`core.inference.driver.Snapshot` that runs compiled
   chunks and checks ``cancel`` between chunks (the sampling driver contract),
3. *delivers* each snapshot: stores it in a one-element slot (the UI reads only the latest frame, so the sampler
   never waits for the page), or, while paused, *holds* it; between chunks it blocks while paused.

Controls act at once, whatever a chunk costs. The smallest chunk is one transition, and a running compiled
chunk (``tf.function``) cannot be interrupted: with a learned prior at 360² one transition takes seconds. So the
controller never waits for the worker; what the user sees changes at the moment of the click:

* **Stop** (and :meth:`close`, called when a browser tab's session is destroyed) sets the run's cancel event and
  turns the state to STOPPED immediately. The last *delivered* snapshot is what is kept and shown (and exported);
  whatever the worker produces after that — the chunk in flight, a late error, a comparison variant — is
  discarded: every write of a worker is checked, under the controller's lock, against its own cancel event and
  run id. The old worker finishes its transition in the background and exits (the driver checks the cancel event
  between chunks; :attr:`lingering_workers` counts such threads). A new Run may start meanwhile: it gets a new
  run id and cancel event, so the old worker's late output can never reach it.
* **Pause** turns the state to PAUSED immediately. The chunk in flight is not thrown away: its snapshot is held
  (not shown) and the worker blocks before computing the next chunk. **Resume** shows the held snapshot and goes
  on; **Step** while paused shows it as the one chunk the step grants. The chains are therefore exactly those of
  an uninterrupted run (the generator is only ever asked for its next chunk) — discarding the chunk and redoing
  it would need the driver to rewind its state, and would show nothing the held chunk does not.
* **Step** grants one more chunk of a paused run (pausing a running one first): a held snapshot is shown at once,
  otherwise one chunk is computed and shown. A step's budget is spent when its snapshot is shown.

Errors in either stage are reported as :attr:`RunState.ERROR` with the message (unless the run was stopped: then
they are logged and dropped); the last completed result (:attr:`RunController.last_result`) is never overwritten
by a failed or stopped run.

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
    STOPPING = "stopping"  # no longer entered (Stop acts at once); kept for callers that test for it
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
        self._retired: list[threading.Thread] = []  # stopped workers finishing their chunk in flight
        self._state = RunState.IDLE
        self._message = "Ready."
        self._run_id = 0
        self._frame_id = 0
        self._snapshot: Any = None
        self._held: Any = None  # computed while paused, shown on resume/step
        self._context: Any = None
        self._paused = False
        self._step_budget = 0
        self._label = ""
        self._started_at = 0.0
        self._stopped_elapsed: float | None = None
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

        With ``sample=None`` only ``prepare`` runs (a preview of the data); the state returns to IDLE. A worker of
        a stopped run may still be finishing its chunk in flight: it does not block the new run, and nothing it
        produces reaches it (see the module docstring).
        """
        if not callable(prepare) or not (sample is None or callable(sample)):
            raise ValueError("prepare must be a callable and sample a callable or None")
        with self._lock:
            if self._state.active:
                raise RuntimeError(f"a run is already {self._state.value}; stop it first")
            self._retire_thread()
            self._run_id += 1
            run_id = self._run_id
            self._cancel = threading.Event()
            self._paused = bool(paused)
            self._step_budget = 0
            self._held = None
            self._state = RunState.PREPARING
            self._message = "Preparing the observation, prior and baselines…"
            self._snapshot = None
            self._context = None
            self._label = label
            self._started_at = time.monotonic()
            self._stopped_elapsed = None
            self._total_steps_hint = int(total_steps)
            cancel = self._cancel
            self._thread = threading.Thread(
                target=self._work, args=(run_id, prepare, sample, cancel),
                name=f"kappascope-{self.name}-run{run_id}", daemon=True)
            self._thread.start()
        return run_id

    def pause(self) -> None:
        """Pause now: the state is PAUSED at once; a chunk in flight is held (not shown) until Resume or Step."""
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
        """Show one more chunk of a paused run (pausing a running one first); a held chunk is shown at once."""
        with self._wake:
            if not self._state.active or self._state == RunState.STOPPING:
                return
            self._paused = True
            self._step_budget += 1
            if self._state == RunState.RUNNING:
                self._state = RunState.PAUSED
            if self._held is not None:
                self._show_held()
            self._wake.notify_all()

    def stop(self, wait: bool = True, timeout: float = 60.0) -> bool:
        """Stop now: the state is STOPPED at once and the last shown snapshot is kept; with ``wait`` also join the
        worker (which finishes its chunk in flight in the background, its output discarded).

        Returns True when the worker of the current (just stopped) run is no longer running; workers of earlier
        stopped runs are counted by :attr:`lingering_workers` and joined by :meth:`join_all`.
        """
        with self._wake:
            thread = self._thread
            if self._state.active:
                self._cancel.set()
                self._paused = False
                self._held = None  # computed after the stop: never shown
                self._step_budget = 0
                if self._snapshot is not None:
                    self._stopped_elapsed = float(getattr(self._snapshot, "elapsed_s", 0.0))
                    self._message = "Stopped; the chains so far are kept on screen."
                else:
                    self._stopped_elapsed = time.monotonic() - self._started_at
                    self._message = "Stopped before sampling started."
                self._state = RunState.STOPPED
                self._wake.notify_all()
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return thread is None or not thread.is_alive()

    close = stop

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the current worker (not for stopped ones still finishing: see :meth:`join_all`)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def join_all(self, timeout: float | None = None) -> bool:
        """Wait for every worker of this controller, including stopped ones finishing their chunk in flight."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._retired) + ([self._thread] if self._thread is not None else [])
        for thread in threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    @property
    def lingering_workers(self) -> int:
        """Worker threads of stopped runs still finishing their chunk in flight (their output is discarded)."""
        with self._lock:
            self._retire_thread(current_too=False)
            current = self._thread is not None and self._thread.is_alive() and not self._state.active
            return sum(t.is_alive() for t in self._retired) + int(current)

    def commit(self, cancel: threading.Event, action: Callable[[], None]) -> bool:
        """Run ``action`` (a quick bookkeeping write of a worker, e.g. a comparison result) only if the run of
        ``cancel`` is the current one and not stopped, atomically with respect to Stop; returns whether it ran."""
        with self._lock:
            if cancel is not self._cancel or cancel.is_set():
                return False
            action()
            return True

    # ------------------------------------------------------------------ reading
    @property
    def state(self) -> RunState:
        return self._state

    @property
    def is_active(self) -> bool:
        return self._state.active

    @property
    def holds_frame(self) -> bool:
        """True while a chunk computed after Pause waits to be shown (by Resume or Step)."""
        return self._held is not None

    @property
    def context(self) -> Any:
        """The prepared problem of the current run (None until prepared)."""
        return self._context

    def latest(self) -> tuple[int, Any]:
        """``(frame_id, snapshot)`` of the newest shown frame; frame_id grows by one per shown snapshot."""
        with self._lock:
            return self._frame_id, self._snapshot

    def status(self) -> RunStatus:
        with self._lock:
            snap = self._snapshot
            step = int(getattr(snap, "step", 0) or 0)
            total = int(getattr(snap, "total_steps", 0) or self._total_steps_hint)
            if self._stopped_elapsed is not None:
                elapsed = self._stopped_elapsed
            else:
                elapsed = float(getattr(snap, "elapsed_s", 0.0)) if snap is not None else time.monotonic() - self._started_at
            if self._state == RunState.IDLE:
                elapsed = 0.0
            eta = None
            if snap is not None and 0 < step < total and self._state in (RunState.RUNNING, RunState.PAUSED):
                eta = elapsed * (total - step) / step
            elif self._state == RunState.DONE:
                eta = 0.0
            return RunStatus(self._state, self._message, self._run_id, self._frame_id, step, total, elapsed, eta)

    # ------------------------------------------------------------------ worker (helpers hold self._lock)
    def _retire_thread(self, current_too: bool = True) -> None:
        if current_too and self._thread is not None and self._thread.is_alive():
            self._retired.append(self._thread)
        self._retired = [t for t in self._retired if t.is_alive()]

    def _current(self, run_id: int, cancel: threading.Event) -> bool:
        return run_id == self._run_id and not cancel.is_set()

    def _show(self, snapshot: Any) -> None:
        self._snapshot = snapshot
        self._frame_id += 1
        if self._paused and self._step_budget > 0:
            self._step_budget -= 1

    def _show_held(self) -> None:
        held, self._held = self._held, None
        self._show(held)

    def _deliver(self, run_id: int, cancel: threading.Event, snapshot: Any) -> bool:
        """Show ``snapshot``, or hold it while paused; False (and drop it) when the run was stopped or replaced."""
        with self._lock:
            if not self._current(run_id, cancel):
                return False
            if self._paused and self._step_budget == 0:
                self._held = snapshot
            else:
                self._show(snapshot)
                if self._state == RunState.RUNNING:
                    self._message = "Running…"
            return True

    def _gate(self, run_id: int, cancel: threading.Event, final: bool) -> bool:
        """Block while paused; show a held snapshot when Resume/Step allow it. Returns False when stopped, True
        when the worker may go on (compute the next chunk, or finish after the ``final`` snapshot was shown)."""
        with self._wake:
            while True:
                if not self._current(run_id, cancel):
                    return False
                if self._held is not None and (not self._paused or self._step_budget > 0):
                    self._show_held()
                if self._held is None and (final or not self._paused or self._step_budget > 0):
                    return True
                self._wake.wait(0.25)

    def _finish(self, run_id: int, cancel: threading.Event, state: RunState, message: str) -> None:
        with self._lock:
            if not self._current(run_id, cancel):
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
            with self._lock:
                if not self._current(run_id, cancel):
                    return  # stopped while preparing: the state is already STOPPED
                self._context = context
                if sample is None:
                    pass
                elif self._paused:
                    self._state, self._message = RunState.PAUSED, "Paused (prepared; press Step or Resume)."
                else:
                    self._state, self._message = RunState.RUNNING, "Compiling and running the chains…"
            if sample is None:
                self._finish(run_id, cancel, RunState.IDLE, "Data ready: press Run (or Step).")
                return
            if not self._gate(run_id, cancel, final=False):
                return
            done = False
            for snapshot in sample(context, cancel):
                done = bool(getattr(snapshot, "done", False))
                if not self._deliver(run_id, cancel, snapshot) or not self._gate(run_id, cancel, final=done):
                    return
                if done:
                    break
            if done:
                self._finish(run_id, cancel, RunState.DONE, "Done: reached σ_min.")
            else:
                self._finish(run_id, cancel, RunState.STOPPED, "The sampler ended without a final snapshot.")
        except Exception as err:  # noqa: BLE001 - every failure must reach the status area
            if not self._current(run_id, cancel):
                logger.info("run %d of %s failed after it was stopped (dropped): %s", run_id, self.name, err)
                return
            logger.exception("run %d of %s failed", run_id, self.name)
            self._finish(run_id, cancel, RunState.ERROR, f"{type(err).__name__}: {err}")
