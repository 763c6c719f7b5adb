"""Status and message text of the dashboard: plain strings from run state, and the one escaping rule. No UI.

Every text that may contain user input (file names, URL values, error messages that quote them) reaches the
page through :func:`plain_html`, which HTML-escapes it (``<`` → ``&lt;`` …) and puts it in a ``<p>``: it is shown
literally, never parsed as HTML or Markdown, so an upload named ``<img src=x onerror=alert(1)>.fits`` or
``**bold**.fits`` is displayed as those characters. Toast notifications get the escaped text too.

The progress line is ``state · step t/T · level l/L · σ · acceptance · NFE · elapsed · ETA`` with the linear
estimate ``ETA = elapsed · (T − t) / t`` (from :class:`dashboard.runner.RunStatus`).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "escape", "plain_html", "lines_html", "table_html", "format_seconds", "progress_text",
           "diagnostics_lines", "DIAGNOSTICS_HELP"]

LEVELS = ("info", "success", "warning", "error")


@dataclass(frozen=True)
class Message:
    """One message for the user: ``text`` (plain text, may quote user input) and ``level`` (info … error)."""

    text: str
    level: str = "info"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")

    @property
    def alert_type(self) -> str:
        """The Bootstrap alert class of the level (``error`` → ``danger``)."""
        return "danger" if self.level == "error" else self.level


def escape(text: Any) -> str:
    """``str(text)`` with ``& < > " '`` replaced by HTML entities."""
    return html.escape(str(text), quote=True)


def plain_html(text: Any) -> str:
    """``text`` as one HTML paragraph that shows it literally (escaped; line breaks kept)."""
    return "<p>" + escape(text).replace("\n", "<br>") + "</p>"


def format_seconds(seconds: float | None) -> str:
    """``"42 s"``, ``"3 min 05 s"``, or ``"–"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def progress_text(status: Any, snapshot: Any | None) -> str:
    """The one-line progress summary (plain text) of a run status and its newest snapshot."""
    parts = [status.state.value]
    if snapshot is not None:
        parts += [f"step {int(snapshot.step)}/{int(snapshot.total_steps)}",
                  f"level {int(getattr(snapshot, 'level', 0)) + 1}/{getattr(snapshot, 'num_levels', '?')}",
                  f"σ = {float(getattr(snapshot, 'sigma', float('nan'))):.3g}",
                  f"acceptance {float(getattr(snapshot, 'acceptance', float('nan'))):.2f}"]
        nfe = getattr(snapshot, "nfe", None)
        if nfe is not None and math.isfinite(float(nfe)):
            parts.append(f"NFE {float(nfe):.0f}/chain")
    else:
        parts.append(f"step {status.step}/{status.total_steps}")
    parts += [f"elapsed {format_seconds(status.elapsed_s)}", f"ETA {format_seconds(status.eta_s)}"]
    return " · ".join(parts)


#: One line under the diagnostics: what they mean for annealed sampling.
DIAGNOSTICS_HELP = (
    "Annealed chains are not stationary, so within-level R-hat is no convergence test. Instead: the samples' "
    "power spectrum should follow the theory (ratio ≈ 1), independent chains should differ (spread > 0), and "
    "the two halves of the chains should agree within their Monte-Carlo error."
)


def lines_html(lines: list[str]) -> str:
    """Several plain-text lines, each escaped in its own paragraph."""
    return "".join(plain_html(line) for line in lines)


def table_html(rows: list[dict[str, Any]]) -> str:
    """A small HTML table of ``rows`` (dicts with the same keys); every cell escaped, ``None`` shown as "–"."""
    if not rows:
        return ""
    keys = list(rows[0])
    head = "".join(f"<th style='padding:2px 8px;text-align:left'>{escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{'–' if r.get(k) is None else escape(r.get(k))}</td>"
                                    for k in keys) + "</tr>" for r in rows)
    return f"<table class='ks-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def diagnostics_lines(problem: Any, snapshot: Any) -> list[str]:
    """The annealing diagnostics of ``core.analysis.diagnostics`` for the snapshot's chains, one line each."""
    from core.analysis.diagnostics import degenerate_run, run_diagnostics

    try:
        diagnostics = run_diagnostics(snapshot.chains, problem.power_map, problem.geometry, problem.mask)
    except ValueError as err:
        return [f"Diagnostics not available: {err}."]
    lines = [f"Diagnostics at σ = {float(snapshot.sigma):.3g} ({snapshot.chains.shape[0]} chains):"]
    lines += diagnostics.lines()
    why = degenerate_run(getattr(snapshot, "traces", None))
    if why:
        lines.append(f"Warning: degenerate run — {why}.")
    return lines
