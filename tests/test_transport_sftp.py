"""SFTP specifics against a real asyncssh server: host keys are verified, never learnt; keys and
passwords both log in; ``~`` paths are relative to the login folder; silence times out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from iotask.connectors.transports import TransportError, TransportOptions, open_transport
from servers import PASSWORD, SftpServer, other_host_key, silent_server, start_sftp


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    (tmp_path / "served" / "in").mkdir(parents=True)
    (tmp_path / "served" / "in" / "users.csv").write_text("a,b\n")
    with start_sftp(tmp_path / "served", tmp_path / "keys") as sftp:
        yield sftp


def options(server: SftpServer, **changes: object) -> TransportOptions:
    return replace(TransportOptions(password=PASSWORD, known_hosts=server.known_hosts,
                                    timeout=5.0, backoff=0.01), **changes)


def names(transport_url: str, options: TransportOptions) -> list[str]:
    with open_transport(transport_url, options) as transport:
        return [file.name for file in transport.list()]


def test_an_unknown_host_key_is_refused_with_its_fingerprint(
        server: SftpServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")

    started = time.monotonic()
    with pytest.raises(TransportError) as refused:
        names(server.url("/in/"), options(server, known_hosts=empty, backoff=10.0))

    message = str(refused.value)
    assert time.monotonic() - started < 4, "a refused host key must not be retried"
    assert f"sftp://hr@127.0.0.1:{server.port}/in/: list failed" in message
    assert "ssh-ed25519 SHA256:" in message and "not in known_hosts" in message
    assert f"ssh-keyscan -p {server.port} 127.0.0.1" in message


def test_a_changed_host_key_is_refused(server: SftpServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts_with_old_key"
    known.write_text(f"[127.0.0.1]:{server.port} {other_host_key()}\n")

    with pytest.raises(TransportError, match="host key changed"):
        names(server.url("/in/"), options(server, known_hosts=known))


def test_a_private_key_logs_in(server: SftpServer) -> None:
    assert names(server.url("/in/"), options(server, password=None,
                                             private_key=server.client_key)) == ["users.csv"]


def test_a_tilde_path_is_relative_to_the_login_folder(server: SftpServer) -> None:
    assert names(server.url("/~/in/"), options(server)) == ["users.csv"]


def test_a_username_is_required() -> None:
    with pytest.raises(TransportError, match="no username"):
        open_transport("sftp://files.example.com/in/", TransportOptions())


def test_a_server_that_never_answers_times_out() -> None:
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"sftp://hr@127.0.0.1:{port}/in/: list failed "
                                                 r"\(after 2 attempts\): no SSH handshake"):
            names(f"sftp://hr@127.0.0.1:{port}/in/",
                  TransportOptions(password=PASSWORD, timeout=0.3, retries=1, backoff=0.01))
    assert time.monotonic() - started < 3
