"""``python -m dashboard`` as a user starts it: it listens on localhost only, and exits promptly on SIGINT/SIGTERM.

Each test starts the real server in a subprocess on a free port (no browser); the listening sockets are read
from ``/proc/net/tcp{,6}``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, listening_addresses

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
EXIT_LIMIT_S = 5.0


def is_loopback(hex_address: str) -> bool:
    """127.0.0.0/8, ::1 or ::ffff:127.x.x.x (the kernel writes IPv4 bytes little-endian: 127 is the last byte)."""
    if len(hex_address) == 8:
        return hex_address.endswith("7F")
    return hex_address == "00000000000000000000000001000000" or (
        hex_address.startswith("0000000000000000FFFF0000") and hex_address.endswith("7F"))


def start_server(port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port), "--no-show", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_listening(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not listening_addresses(port):
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not start listening")
        time.sleep(0.3)


def test_default_address_is_localhost_in_the_parser():
    from dashboard.__main__ import build_parser

    assert build_parser().parse_args([]).address == "localhost"
    assert build_parser().parse_args(["--address", "0.0.0.0"]).address == "0.0.0.0"


@pytest.mark.slow
def test_server_listens_on_loopback_only_and_exits_on_sigint():
    port = free_port()
    process = start_server(port)
    try:
        wait_listening(process, port)
        addresses = listening_addresses(port)
        assert addresses and all(is_loopback(a) for a in addresses), addresses
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=60) as response:  # builds a session
            assert response.status == 200
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=EXIT_LIMIT_S + 5)
        assert time.monotonic() - sent <= EXIT_LIMIT_S
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


#: ``python -m dashboard`` (its real ``main``) while a session's run is blocked inside a compiled chunk (test-only: a
#: ``tf.function`` whose ``tf.py_function`` sleeps two minutes and never looks at the cancel event, like a transition
#: of the learned prior at 360²). It prints STUCK on stdout once the worker is inside that chunk.
_STUCK_SERVER = r"""
import sys, threading, time
from core.cli.dispatch import quiet_tensorflow
quiet_tensorflow()
import tensorflow as tf
from dashboard.runner import RunController

inside = threading.Event()

@tf.function
def chunk(x):
    def hold(value):
        inside.set()
        time.sleep(120)
        return value
    return tf.py_function(hold, [x], tf.float32)

class Snapshot:
    def __init__(self, step):
        self.step, self.total_steps, self.done, self.elapsed_s = step, 10, False, 0.1 * step

def sample(context, cancel):
    yield Snapshot(1)
    chunk(tf.zeros(()))
    yield Snapshot(2)

controller = RunController("stuck session")
controller.start(lambda: None, sample)
assert inside.wait(600), "the worker never entered the chunk"
sys.stdout.write("STUCK\n")
sys.stdout.flush()
from dashboard.__main__ import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_sigterm_exits_promptly_while_a_run_is_inside_a_long_chunk():
    """#14: SIGTERM while a session's worker is inside an uninterruptible two-minute chunk: the server exits within
    EXIT_LIMIT_S with status 128 + SIGTERM (the run is stopped at once; nothing waits for the chunk)."""
    import select

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _STUCK_SERVER, "--port", str(port), "--no-show"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 600)  # TensorFlow start-up: slow on a loaded machine
        assert ready and process.stdout.readline().strip() == b"STUCK", process.poll()
        wait_listening(process, port)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rc = process.wait(timeout=EXIT_LIMIT_S + 30)
        exit_s = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert rc == 128 + signal.SIGTERM, process.stderr.read().decode()[-2000:]
    assert exit_s <= EXIT_LIMIT_S, f"exit took {exit_s:.2f} s after SIGTERM"
    print(f"SIGTERM with a run inside a 120 s chunk: exit {rc} after {exit_s:.2f} s")
