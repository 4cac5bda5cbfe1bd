"""Real FTP, FTPS, SFTP and HTTPS servers on loopback ports, for the transport tests.

Each ``start_*`` helper is a context manager that serves a temporary folder from a thread of this
process and stops when the block ends. The protocols are real (pyftpdlib, asyncssh's SFTP server,
http.server behind ssl) so the transports are tested over sockets, never against mocks; the servers
can also misbehave on purpose (cut an FTP download, answer HTTP 503) to exercise the retries.

A server that cannot start fails the test when CI is set and skips it otherwise, as conftest does
for the databases.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

USER = "hr"
PASSWORD = "s3cret-Pa55word"


def unavailable(what: str, error: BaseException) -> NoReturn:
    """Fail under CI (a missing server must not pass silently); skip on a developer machine."""
    message = f"{what} could not start: {type(error).__name__}: {error}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca_path: Path
    cert_path: Path
    ca: Any
    leaf: Any

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        return context


def make_tls(folder: Path) -> Tls:
    """A trustme CA written to ``folder/ca.pem`` and a leaf to ``folder/server.pem``."""
    try:
        import trustme
    except ImportError as exc:
        unavailable("trustme (test CA)", exc)
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    return Tls(folder / "ca.pem", folder / "server.pem", ca, leaf)


# ------------------------------------------------------------------------------------- FTP


@dataclass
class FtpServer:
    host: str
    port: int
    root: Path
    drops: list[int]
    """Byte counts: the next downloads each have their connection cut after that many bytes."""
    short: list[int] = field(default_factory=list)
    """Byte counts: the next downloads end early but cleanly ("226 Transfer complete")."""
    retrievals: list[str] = field(default_factory=list)

    def url(self, path: str = "/", scheme: str = "ftp") -> str:
        return f"{scheme}://{USER}@{self.host}:{self.port}{path}"


@contextmanager
def start_ftp(root: Path, tls: Tls | None = None,
              perm: str = "elradfmwMT") -> Iterator[FtpServer]:
    """pyftpdlib serving ``root`` to USER/PASSWORD (with pyftpdlib's ``perm`` letters); with
    ``tls``, explicit FTPS is required on the control and the data connections."""
    try:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        base: type = FTPHandler
        if tls is not None:
            from pyftpdlib.handlers import TLS_FTPHandler

            base = TLS_FTPHandler
    except ImportError as exc:
        unavailable("pyftpdlib", exc)
    quiet = logging.getLogger("pyftpdlib")
    quiet.setLevel(logging.WARNING)
    if not quiet.handlers:  # else pyftpdlib installs its own stderr handler at INFO
        quiet.addHandler(logging.NullHandler())
    state = FtpServer("127.0.0.1", 0, root, [])

    class CuttingFS(AbstractedFS):
        def open(self, filename: str, mode: str) -> Any:
            stream = super().open(filename, mode)
            if "r" in mode:
                state.retrievals.append(os.path.relpath(filename, root))
                if state.drops:
                    return _CutAfter(stream, state.drops.pop(0), self.cmd_channel)
                if state.short:
                    return _CutAfter(stream, state.short.pop(0), None)
            return stream

    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm=perm)
    attributes: dict[str, Any] = {
        "authorizer": authorizer, "abstracted_fs": CuttingFS, "auth_failed_timeout": 0,
        "use_sendfile": False,
    }
    if tls is not None:
        attributes.update(certfile=str(tls.cert_path), tls_control_required=True,
                          tls_data_required=True, ssl_context=None)
    handler = type("TestFTPHandler", (base,), attributes)
    try:
        server = FTPServer(("127.0.0.1", 0), handler)
    except OSError as exc:
        unavailable("the FTP server", exc)
    state.port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, name="test-ftpd", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(10)


class _CutAfter:
    """A file that ends after ``limit`` bytes; with a ``channel``, the whole FTP session is
    closed there too (a dropped line), else the transfer is reported complete (a lying server)."""

    def __init__(self, stream: Any, limit: int, channel: Any) -> None:
        self._stream, self._left, self._channel = stream, limit, channel
        self.name = stream.name

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            if self._channel is not None:
                self._channel.close()
            return b""
        chunk = self._stream.read(min(size, self._left) if size > 0 else self._left)
        self._left -= len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# ------------------------------------------------------------------------------------ SFTP


@dataclass
class SftpServer:
    host: str
    port: int
    root: Path
    known_hosts: Path
    client_key: Path

    def url(self, path: str = "/") -> str:
        return f"sftp://{USER}@{self.host}:{self.port}{path}"


@contextmanager
def start_sftp(root: Path, keys: Path) -> Iterator[SftpServer]:
    """asyncssh's SFTP server chrooted to ``root``, on its own event loop in a thread. It
    accepts USER with PASSWORD or with the private key written to ``keys/client_key``; its host
    key is written to ``keys/known_hosts``."""
    try:
        import asyncssh
    except ImportError as exc:
        unavailable("asyncssh (SFTP server)", exc)
    keys.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (keys / "client_key").write_bytes(client_key.export_private_key("openssh"))
    os.chmod(keys / "client_key", 0o600)

    class PasswordServer(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == (USER, PASSWORD)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-sftpd", daemon=True)
    thread.start()

    async def listen() -> Any:
        return await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], server_factory=PasswordServer,
            authorized_client_keys=asyncssh.import_authorized_keys(
                client_key.export_public_key().decode()),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(root)),
            allow_scp=False,
        )

    try:
        acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
    except Exception as exc:
        loop.call_soon_threadsafe(loop.stop)
        unavailable("the SFTP server", exc)
    port = acceptor.get_port()
    public = host_key.export_public_key().decode().strip()
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {public}\n")
    try:
        yield SftpServer("127.0.0.1", port, root, keys / "known_hosts", keys / "client_key")
    finally:
        async def shutdown() -> None:
            acceptor.close()
            await acceptor.wait_closed()
            sessions = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def other_host_key() -> str:
    """The public half of a fresh ed25519 key: what an impostor server would present."""
    try:
        import asyncssh
    except ImportError as exc:
        unavailable("asyncssh (SSH keys)", exc)
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


# ----------------------------------------------------------------------------------- HTTPS


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpsServer:
    port: int
    scheme: str
    documents: dict[str, bytes] = field(default_factory=dict)
    """Served on GET/HEAD with Content-Length and Last-Modified (1 Jan 2020)."""
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    """Per path, answers given in turn before falling back to documents (POST: 201)."""
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def start_https(tls: Tls | None) -> Iterator[HttpsServer]:
    """http.server behind TLS (``tls``'s certificate; plain HTTP when None), recording every
    request."""
    state = HttpsServer(0, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.received.append(Received(self.command, self.path, dict(self.headers), body))
            script = state.scripts.get(self.path)
            if script:
                answer = script.pop(0)
            elif self.command == "POST":
                answer = Answer(201, b"stored")
            elif self.path in state.documents:
                answer = Answer(200, state.documents[self.path], {
                    "Last-Modified": formatdate(1577836800, usegmt=True)})
            else:
                answer = Answer(404, b"no such document")
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_HEAD = do_POST = _answer

    try:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    except (OSError, ssl.SSLError) as exc:
        unavailable("the HTTPS server", exc)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-httpsd",
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


# ------------------------------------------------------------------ an export cut by SIGKILL

EXPORTER = """
import json, os, sys
from pathlib import Path
from iotask.connectors.transports import TransportOptions, open_transport
url, settings, source = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
paths = {"file_roots": [Path(root) for root in settings.pop("file_roots", [])]}
for key in ("known_hosts", "ca_bundle"):
    if key in settings:
        paths[key] = Path(settings.pop(key))
options = TransportOptions(**paths, **settings)
open_transport(url, options).put(Path(source), "users.csv")
"""


def _open_writer(fifo: Path, process: subprocess.Popen) -> int:
    """The writing end of ``fifo`` once the exporter opened it for reading."""
    deadline = time.monotonic() + 20
    while process.poll() is None and time.monotonic() < deadline:
        try:
            descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.01)
            continue
        os.set_blocking(descriptor, True)
        return descriptor
    process.kill()
    _, stderr = process.communicate(timeout=10)
    pytest.fail(f"the exporter did not start reading its input: {stderr.decode()}")


def kill_mid_export(url: str, settings: dict[str, Any], watch: Path, scratch: Path) -> None:
    """Run ``put(<pipe>, "users.csv")`` to ``url`` in a subprocess (``settings``: the
    TransportOptions as JSON), feed it through a pipe until its temporary ``.users.csv*`` file in
    the server-side folder ``watch`` holds data, and SIGKILL it there, mid-write."""
    fifo = scratch / "export.fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", EXPORTER, url, json.dumps(settings), str(fifo)],
        stderr=subprocess.PIPE,
    )
    try:
        with os.fdopen(_open_writer(fifo, process), "wb") as pipe:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and process.poll() is None:
                pipe.write(b"partial,row\n" * 5000)
                pipe.flush()
                partial = [p for p in watch.iterdir() if p.name.startswith(".users.csv")]
                if partial and partial[0].stat().st_size > 0:
                    process.send_signal(signal.SIGKILL)
                    break
            process.wait(10)
    except BrokenPipeError:
        pass
    finally:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, f"the exporter was not killed: {stderr!r}"
