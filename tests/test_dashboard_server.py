"""``python -m dashboard`` as a user starts it: it listens on localhost only, and exits promptly on SIGINT/SIGTERM.

Each test starts the real server in a subprocess on a free port (no browser); the listening sockets are read
from ``/proc/net/tcp{,6}``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
EXIT_LIMIT_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


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
