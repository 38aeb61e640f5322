"""The fake hub itself: a client that hangs up early is normal (a download cut, a timeout) and
prints nothing; any other error in a handler still shows its traceback."""

from __future__ import annotations

import socket
import time

import pytest

from .fake_hub import FakeHub


@pytest.fixture
def small_hub(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    with FakeHub("org/tiny", tmp_path) as hub:
        yield hub


def _get(hub: FakeHub, headers: str = "") -> socket.socket:
    host, port = hub.server.server_address[:2]
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(
        f"GET /org/tiny/resolve/main/model.safetensors HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    )
    return sock


def _served(hub: FakeHub, n: int) -> None:
    end = time.monotonic() + 10
    while len(hub.requests) < n and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.5)  # the handler runs on until its next write fails


def test_a_client_that_hangs_up_early_prints_nothing(small_hub, capfd):
    hub = small_hub
    hub.bytes_per_second = 200_000  # about 5 s for the file: the client is gone long before
    for n in (1, 2):
        sock = _get(hub)
        sock.recv(100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # a reset: ECONNRESET
        sock.close() if n == 1 else sock.shutdown(socket.SHUT_RDWR)
        _served(hub, n)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


def test_other_handler_errors_still_show(small_hub, capfd):
    hub = small_hub
    _get(hub, "Range: bytes=abc-\r\n").close()  # the fake hub cannot parse this range: a bug shows
    _served(hub, 1)
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError" in err, err
