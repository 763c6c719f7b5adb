"""Serving the dashboard: Panel configuration, the bind address, message size, and a prompt exit on signals.

* The server listens on ``localhost`` unless an address is given (``--address 0.0.0.0`` exposes it).
* Uploads travel in chunks of ``UPLOAD_CHUNK_BYTES`` (the upload widget splits files), under the websocket message
  limit ``WEBSOCKET_MAX_BYTES``; the upload cap itself (:data:`dashboard.uploads.MAX_UPLOAD_BYTES`) is enforced in
  the browser and again on the server with a message naming it.
* Panel's URL-location sync is off (``location=False``): the raw query is checked by the app, key by key.
* When the connection drops, the page shows :data:`DISCONNECT_NOTICE` (Panel's disconnect notification).
* SIGTERM/SIGINT cancel every session's run, stop the server and exit; a watchdog ends the process after
  ``EXIT_GRACE_S`` seconds if anything (a compiled chunk in a worker thread) holds it up.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable, Mapping

import panel as pn

__all__ = ["DEFAULT_ADDRESS", "WEBSOCKET_MAX_BYTES", "DISCONNECT_NOTICE", "configure_panel", "device_description",
           "serve_routes"]

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "localhost"
WEBSOCKET_MAX_BYTES = 64 * 1024 * 1024
EXIT_GRACE_S = 2.0
DISCONNECT_NOTICE = ("Disconnected: the kappascope server is gone, so this page no longer updates (a run shown as "
                     "running has stopped). Reload the page once the server is back.")


def configure_panel(num_threads: int | None = None) -> None:
    """Extensions, notifications (toasts and the disconnect notice) and worker threads."""
    pn.extension("filedropper", notifications=True, disconnect_notification=DISCONNECT_NOTICE)
    pn.config.disconnect_notification = DISCONNECT_NOTICE
    if num_threads is not None:
        pn.config.nthreads = num_threads


def device_description() -> str:
    """The device TensorFlow computes on: the first GPU's name, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
        except Exception:  # noqa: BLE001 - details are optional
            name = gpus[0].name
        return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")
    cpus = tf.config.list_physical_devices("CPU")
    return f"CPU ({len(cpus)} device{'s' if len(cpus) != 1 else ''}, no GPU visible)"


def _cancel_all_runs() -> None:
    """Set the cancel event of every run controller's worker (all sessions of this process)."""
    from dashboard.runner import RunController

    for controller in list(RunController.instances()):
        controller.stop(wait=False)


#: The signal that stopped the server (None while it runs); ``python -m dashboard`` exits with ``128 + signum``.
received_signal: list[int] = []


def _install_exit_handlers(server: Any) -> None:
    def on_signal(signum: int, frame: Any) -> None:
        logger.info("signal %d: stopping the kappascope server", signum)
        received_signal.append(signum)
        _cancel_all_runs()
        watchdog = threading.Timer(EXIT_GRACE_S, lambda: os._exit(128 + signum))
        watchdog.daemon = True
        watchdog.start()
        server.io_loop.asyncio_loop.call_soon_threadsafe(server.io_loop.stop)

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, on_signal)
        except ValueError:  # not the main thread
            pass


def serve_routes(routes: Mapping[str, Callable[[], Any]], port: int = 5006, show: bool = True,
                 address: str | None = None, threaded: bool = False, websocket_origin: list[str] | str | None = None,
                 num_threads: int | None = None, **kwargs: Any) -> Any:
    """Serve ``routes`` (path → page function, one page per session) at ``http://address:port/``.

    Blocks until SIGTERM/SIGINT unless ``threaded`` (then returns the server, stopped with ``.stop()``).
    """
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    address = address or DEFAULT_ADDRESS
    configure_panel(num_threads)
    kwargs.setdefault("websocket_max_message_size", WEBSOCKET_MAX_BYTES)
    # location=False: Panel's own URL parsing would crash the session on hostile values (a 5000-digit number);
    # the app reads the raw query itself and checks every value (dashboard.settings).
    kwargs.setdefault("location", False)
    options = dict(port=port, address=address, websocket_origin=websocket_origin, title="kappascope", **kwargs)
    if threaded:
        return pn.serve(dict(routes), show=show, threaded=True, **options)
    server = pn.serve(dict(routes), show=show, start=False, **options)
    _install_exit_handlers(server)
    server.start()
    try:
        server.io_loop.start()
    finally:
        _cancel_all_runs()
        server.stop()
    return server
