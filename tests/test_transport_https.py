"""HTTPS against a real TLS server with a throwaway CA: retries on 503, errors quoting the body,
certificate verification, POSTed exports with their headers, and what https cannot do."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from iotask.connectors.transports import (
    RemoteFile,
    Transport,
    TransportError,
    TransportOptions,
    open_transport,
)
from servers import Answer, HttpsServer, Tls, make_tls, silent_server, start_https

DOCUMENT = b"id,name\n" + b"1,Ada\n" * 10_000


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def server(tls: Tls) -> Iterator[HttpsServer]:
    with start_https(tls) as https:
        https.documents["/hr/users.csv"] = DOCUMENT
        yield https


@pytest.fixture
def trusted(tls: Tls) -> TransportOptions:
    return TransportOptions(ca_bundle=tls.ca_path, timeout=5.0, backoff=0.01)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    path.write_bytes(b"id,name\n1,Ada\n")
    return path


def transport_file(transport: Transport) -> RemoteFile:
    """The RemoteFile of a single-document URL, without asking the server."""
    return RemoteFile(transport.target or "", transport.path, None, None)


def methods(server: HttpsServer) -> list[str]:
    return [request.method for request in server.received]


def test_a_document_is_listed_with_its_size_and_date_and_is_ready(
        server: HttpsServer, trusted: TransportOptions) -> None:
    transport = open_transport(server.url("/hr/users.csv"), trusted)

    (file,) = transport.list()

    assert (file.name, file.size, file.mtime) == ("users.csv", len(DOCUMENT), 1577836800.0)
    assert transport.ready([file]) == ([file], [])
    assert open_transport(server.url("/hr/absent.csv"), trusted).list() == []


def test_503_twice_then_200_succeeds(server: HttpsServer, trusted: TransportOptions) -> None:
    transport = open_transport(server.url("/hr/users.csv"), trusted)
    (file,) = transport.list()
    server.scripts["/hr/users.csv"] = [Answer(503, b"busy"), Answer(503, b"busy")]
    destination = io.BytesIO()

    digest = transport.fetch(file, destination)

    assert methods(server) == ["HEAD", "GET", "GET", "GET"]
    assert destination.getvalue() == DOCUMENT
    assert digest == hashlib.sha256(DOCUMENT).hexdigest()


def test_a_400_fails_at_once_quoting_the_body(
        server: HttpsServer, trusted: TransportOptions) -> None:
    body = "".join(f"row {n} is wrong; " for n in range(100))
    server.scripts["/hr/users.csv"] = [Answer(400, body.encode())]
    transport = open_transport(server.url("/hr/users.csv"), replace(trusted, backoff=10.0))

    with pytest.raises(TransportError) as failed:
        transport.fetch(transport_file(transport), io.BytesIO())

    message = str(failed.value)
    assert methods(server) == ["GET"]
    assert f"https://127.0.0.1:{server.port}/hr/users.csv: download failed" in message
    assert f'HTTP 400 Bad Request; the server said: "{body[:500]}"' in message


def test_a_server_that_keeps_failing_ends_in_an_error(
        server: HttpsServer, trusted: TransportOptions) -> None:
    server.scripts["/hr/users.csv"] = [Answer(503, b"down for maintenance")] * 3
    transport = open_transport(server.url("/hr/users.csv"), replace(trusted, retries=2))

    with pytest.raises(TransportError, match=r'download failed \(after 3 attempts\): HTTP 503 '
                                             r'Service Unavailable; the server said: "down for '
                                             r'maintenance"; the server kept failing'):
        transport.fetch(transport_file(transport), io.BytesIO())
    assert methods(server) == ["GET"] * 3


def test_an_unknown_ca_is_refused_and_a_configured_bundle_accepted(
        server: HttpsServer, tls: Tls, tmp_path: Path) -> None:
    stranger = make_tls(tmp_path / "other-ca")
    url = server.url("/hr/users.csv")

    for options in (TransportOptions(timeout=5.0), TransportOptions(ca_bundle=stranger.ca_path)):
        with pytest.raises(TransportError) as refused:
            open_transport(url, options).list()
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        assert "set ca_bundle to the CA file that signed it" in str(refused.value)

    assert len(open_transport(url, TransportOptions(ca_bundle=tls.ca_path)).list()) == 1


def test_put_posts_the_body_with_its_type_and_auth_header(
        server: HttpsServer, trusted: TransportOptions, export: Path) -> None:
    options = replace(trusted, content_type="text/csv; charset=utf-8",
                      auth_header={"env": "HR_API_TOKEN"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HR_API_TOKEN", "Bearer token-123")
        transport = open_transport(server.url("/api/import/"), options)

    digest = transport.put(export, "users-20260309.csv")

    (request,) = server.received
    assert (request.method, request.path) == ("POST", "/api/import/users-20260309.csv")
    assert request.body == export.read_bytes()
    assert request.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert request.headers["Authorization"] == "Bearer token-123"
    assert request.headers["Content-Length"] == str(export.stat().st_size)
    assert digest == hashlib.sha256(export.read_bytes()).hexdigest()


def test_put_with_basic_auth_and_a_named_header(
        server: HttpsServer, trusted: TransportOptions, export: Path) -> None:
    options = replace(trusted, auth_header="X-Api-Key: key-456", password="pw-789")
    open_transport(f"https://hr@127.0.0.1:{server.port}/api/users?mode=full", options).put(export)

    (request,) = server.received
    assert request.path == "/api/users?mode=full"
    assert request.headers["X-Api-Key"] == "key-456"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"hr:pw-789").decode()


def test_put_retries_5xx_and_sends_the_whole_body_each_time(
        server: HttpsServer, trusted: TransportOptions, export: Path) -> None:
    server.scripts["/api/users"] = [Answer(503), Answer(502)]

    open_transport(server.url("/api/users"), trusted).put(export)

    assert methods(server) == ["POST"] * 3
    assert all(request.body == export.read_bytes() for request in server.received)


def test_put_4xx_fails_quoting_the_first_500_characters_without_secrets(
        server: HttpsServer, trusted: TransportOptions, export: Path) -> None:
    body = "x" * 499 + "<" + "y" * 600
    server.scripts["/api/users"] = [Answer(422, body.encode())]
    options = replace(trusted, auth_header="Bearer Secret-Token-1", password="Secret-Password-2",
                      username="hr")

    with pytest.raises(TransportError) as failed:
        open_transport(server.url("/api/users"), options).put(export)

    message = str(failed.value)
    assert methods(server) == ["POST"]
    assert f'HTTP 422 Unprocessable Entity; the server said: "{"x" * 499}<"' in message
    assert "y" not in message.split("said:")[1].split(";")[0]
    assert "Secret-Token-1" not in message and "Secret-Password-2" not in message


def test_a_password_echoed_by_the_server_is_masked(
        server: HttpsServer, trusted: TransportOptions, export: Path) -> None:
    server.scripts["/api/users"] = [Answer(401, b"bad credentials hr:Secret-Password-2")]
    options = replace(trusted, password="Secret-Password-2", username="hr")

    with pytest.raises(TransportError) as failed:
        open_transport(server.url("/api/users"), options).put(export)

    assert 'the server said: "bad credentials hr:********"' in str(failed.value)
    assert "check the username, password or auth header" in str(failed.value)


def test_http_works_only_when_allowed(trusted: TransportOptions) -> None:
    with start_https(None) as plain:
        plain.documents["/users.csv"] = b"a\n"
        url = plain.url("/users.csv")
        with pytest.raises(TransportError, match="allow_http"):
            open_transport(url, trusted)
        transport = open_transport(url, replace(trusted, allow_http=True))
        destination = io.BytesIO()
        transport.fetch(transport.list()[0], destination)
    assert destination.getvalue() == b"a\n"


def test_what_https_cannot_do_is_refused_clearly(
        server: HttpsServer, trusted: TransportOptions) -> None:
    transport = open_transport(server.url("/hr/users.csv"), trusted)
    with pytest.raises(TransportError, match="https cannot rename files"):
        transport.mark_imported(transport_file(transport))
    with pytest.raises(TransportError, match="names one document"):
        open_transport(server.url("/hr/"), trusted).list()
    with pytest.raises(TransportError, match="done markers need a folder listing"):
        open_transport(server.url("/hr/users.csv"), replace(trusted, done_marker=".done"))


def test_a_server_that_never_answers_times_out() -> None:
    with silent_server() as port:
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"https://127.0.0.1:{port}/users.csv: list "
                                                 r"failed \(after 2 attempts\).*timed out"):
            open_transport(f"https://127.0.0.1:{port}/users.csv",
                           TransportOptions(timeout=0.3, retries=1, backoff=0.01)).list()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("url_userinfo", "auth_header"), [
    ("bob:pw@", None),  # a password shorter than 4 characters
    ("", "Bearer tok3nV4lue"),
])
def test_credentials_a_server_echoes_back_are_masked(
        server: HttpsServer, trusted: TransportOptions, url_userinfo: str,
        auth_header: str | None) -> None:
    """A 4xx body quoting the request's Authorization header, the Basic-auth string or the
    password itself never reaches the error (issue 10.3)."""
    url = server.url("/hr/users.csv").replace("https://", f"https://{url_userinfo}")
    transport = open_transport(url, replace(trusted, auth_header=auth_header))
    server.scripts["/hr/users.csv"] = [Answer(401, b"placeholder")]
    with pytest.raises(TransportError):
        transport.fetch(transport_file(transport), io.BytesIO())
    header = server.received[-1].headers.get("Authorization", "")
    assert header  # the request carried credentials
    server.scripts["/hr/users.csv"] = [Answer(401, (
        f"denied: Authorization: {header}; password 'pw', token tok3nV4lue").encode())]
    with pytest.raises(TransportError) as failed:
        transport.fetch(transport_file(transport), io.BytesIO())
    message = str(failed.value)
    assert "HTTP 401" in message and "denied" in message
    assert header not in message and header.split()[-1] not in message
    if url_userinfo:
        assert "'pw'" not in message
    else:
        assert "tok3nV4lue" not in message
