"""A real waitress server for the web tests: the app of ``iotask.web.create_app`` on a free
loopback port, in a thread of the test process; and `iotask serve` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from waitress.server import create_server

from iotask import config as config_module
from iotask.web import create_app

TESTS = Path(__file__).resolve().parent


class LiveServer:
    """The console and run-due URL for ``db_url``, configured from the environment as
    `iotask serve` is; ``url`` is where it answers."""

    def __init__(self, db_url: str, threads: int = 8) -> None:
        self.app = create_app(config_module.load(db_url))
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=threads)
        port = self.server.effective_port  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """waitress's loop, a tenth of a second at a time until told to stop; then every
        socket closed here, in the loop's own thread."""
        channels = self.server._map  # type: ignore[union-attr]
        try:
            while not self._stop.is_set():
                self.server.asyncore.loop(timeout=0.1, map=channels, count=1)
        finally:
            for channel in list(channels.values()):
                channel.close()

    @property
    def console(self):
        return self.app.extensions["iotask"]

    def close(self) -> None:
        self.console.runs.join(30)
        self._stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the test server did not stop"
        self.server.task_dispatcher.shutdown()
        self.console.engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(db_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None
                ) -> tuple[subprocess.Popen[str], str]:
    """`iotask serve` in a subprocess on a free port; its URL once it answers."""
    port = free_port()
    environment = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "iotask"), "--db", db_url, "serve", "--port",
         str(port), *args], cwd=cwd, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"iotask serve exited: {process.communicate()[1]}")
        try:
            requests.get(url + "/login", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("iotask serve did not answer")


def stop_serve(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop it; what it wrote on stdout and stderr."""
    process.terminate()
    try:
        return process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
