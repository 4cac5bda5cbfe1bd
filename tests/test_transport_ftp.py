"""FTP and FTPS faults against a real pyftpdlib server: a download cut mid-way is retried from
zero, a line that keeps failing ends in a clear error, an untrusted certificate is refused."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from iotask.connectors.transports import Transport, TransportError, TransportOptions, open_transport
from servers import PASSWORD, FtpServer, Tls, make_tls, silent_server, start_ftp

DATA = os.urandom(1_000_000)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=["ftp", "ftps"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(scheme: str, tmp_path: Path, tls: Tls) -> Iterator[FtpServer]:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.bin").write_bytes(DATA)
    with start_ftp(tmp_path, tls if scheme == "ftps" else None) as ftp:
        yield ftp


def transport_for(server: FtpServer, scheme: str, tls: Tls, retries: int = 3) -> Transport:
    options = TransportOptions(password=PASSWORD, timeout=5.0, backoff=0.01, retries=retries,
                               ca_bundle=tls.ca_path)
    return open_transport(server.url("/in/big.bin", scheme), options)


def test_a_download_cut_in_the_middle_is_retried_from_zero(
        server: FtpServer, scheme: str, tls: Tls) -> None:
    transport = transport_for(server, scheme, tls)
    (file,) = transport.list()
    server.drops.append(300_000)
    destination = io.BytesIO()

    digest = transport.fetch(file, destination)

    assert server.retrievals == ["in/big.bin", "in/big.bin"]
    assert destination.getvalue() == DATA
    assert digest == hashlib.sha256(DATA).hexdigest()
    transport.close()


def test_a_download_reported_complete_but_short_is_retried(
        server: FtpServer, scheme: str, tls: Tls) -> None:
    transport = transport_for(server, scheme, tls)
    (file,) = transport.list()
    server.short.append(500_000)
    destination = io.BytesIO()

    transport.fetch(file, destination)

    assert len(server.retrievals) == 2
    assert destination.getvalue() == DATA
    transport.close()


def test_a_download_cut_every_time_fails_naming_host_and_path(
        server: FtpServer, scheme: str, tls: Tls) -> None:
    transport = transport_for(server, scheme, tls, retries=2)
    (file,) = transport.list()
    server.drops.extend([100_000] * 3)

    with pytest.raises(TransportError) as failed:
        transport.fetch(file, io.BytesIO())

    message = str(failed.value)
    assert len(server.retrievals) == 3
    assert f"@127.0.0.1:{server.port}/in/big.bin: download failed (after 3 attempts)" in message
    assert "the next run will try again" in message
    assert PASSWORD not in message


def test_an_untrusted_certificate_is_refused_without_retrying(tmp_path: Path, tls: Tls) -> None:
    stranger = make_tls(tmp_path / "other-ca")
    with start_ftp(tmp_path, tls) as ftp:
        options = TransportOptions(password=PASSWORD, ca_bundle=stranger.ca_path, backoff=10.0,
                                   timeout=5.0)
        started = time.monotonic()
        with pytest.raises(TransportError) as refused:
            open_transport(ftp.url("/", "ftps"), options).list()

    assert time.monotonic() - started < 4
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    assert "set ca_bundle to the CA file that signed it" in str(refused.value)


def test_a_server_that_never_answers_times_out() -> None:
    with silent_server() as port:
        options = TransportOptions(password=PASSWORD, timeout=0.3, retries=1, backoff=0.01)
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"ftp://hr@127.0.0.1:{port}/in/: list failed "
                                                 r"\(after 2 attempts\): timed out"):
            open_transport(f"ftp://hr@127.0.0.1:{port}/in/", options).list()
    assert time.monotonic() - started < 3
