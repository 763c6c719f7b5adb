"""``kappascope serve``: the dashboard, served by ``python -m panel serve <dashboard>/app.py`` in a child process.

``core`` never imports the dashboard: the app file is located with :func:`importlib.util.find_spec` (no import) and
handed to Panel. The server listens on ``localhost`` (loopback only) unless ``--address`` names another interface;
``--address 0.0.0.0`` exposes it to the network and then needs ``--allow-websocket-origin``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from core.cli.args import InputError, port, positive_int

__all__ = ["DEFAULT_ADDRESS", "DASHBOARD_APP", "add_serve_parser", "dashboard_app", "dashboard_command", "serve"]

#: the interface the server binds unless ``--address`` is given (loopback only)
DEFAULT_ADDRESS = "localhost"


def dashboard_app() -> Path:
    """``<dashboard package>/app.py`` of the installed (or checked-out) dashboard, found without importing it."""
    try:
        spec = importlib.util.find_spec("dashboard")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            app = Path(folder) / "app.py"
            if app.is_file():
                return app
    return Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


#: the Panel app served by ``kappascope serve`` (found relative to the installed packages, never imported)
DASHBOARD_APP = dashboard_app()


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve the interactive dashboard (panel serve dashboard/app.py) on localhost",
        description="Serve the kappascope dashboard with 'python -m panel serve' in a child process. It listens on "
                    f"{DEFAULT_ADDRESS} only unless --address is given.",
    )
    p.add_argument("--port", type=port, default=5006, help="TCP port (0 picks a free one) (default: %(default)s)")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help="address to listen on; 0.0.0.0 exposes the server to every network interface "
                        "(default: %(default)s, loopback only)")
    p.add_argument("--show", action="store_true", help="open the app in a browser tab")
    p.add_argument("--num-threads", type=positive_int, default=None,
                   help="worker threads of the Panel server for callbacks (default: Panel's)")
    p.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                   help="extra origin allowed to connect (repeatable), needed with --address 0.0.0.0")
    p.add_argument("--dry-run", action="store_true", help="print the server command instead of running it")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def dashboard_command(args: argparse.Namespace) -> list[str]:
    """The ``python -m panel serve <dashboard>/app.py --address … --port …`` command line of ``kappascope serve``."""
    cmd = [sys.executable, "-m", "panel", "serve", str(DASHBOARD_APP), "--address", args.address or DEFAULT_ADDRESS,
           "--port", str(args.port)]
    if args.show:
        cmd.append("--show")
    if args.num_threads is not None:
        cmd += ["--num-threads", str(args.num_threads)]
    for origin in args.allow_websocket_origin or []:
        cmd += ["--allow-websocket-origin", origin]
    return cmd


def serve(args: argparse.Namespace) -> int:
    """Run the server in a child process until it exits; SIGTERM and Ctrl-C are forwarded to it."""
    if not DASHBOARD_APP.is_file():
        raise InputError(f"the dashboard app {str(DASHBOARD_APP)!r} is missing (is the dashboard package installed?)")
    cmd = dashboard_command(args)
    if args.dry_run:
        sys.stdout.write(shlex.join(cmd) + "\n")
        return 0
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = str(DASHBOARD_APP.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    process = subprocess.Popen(cmd, env=env)

    def forward(signum: int, frame: Any) -> None:  # stop the server with us (no orphaned child on SIGTERM)
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward) if threading.current_thread() is threading.main_thread() else None
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
