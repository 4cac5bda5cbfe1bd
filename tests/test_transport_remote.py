"""FTP, explicit FTPS and SFTP against real servers on loopback ports (see servers.py): folder
listings, readiness, downloads with checksums, server-side renames, atomic uploads and errors."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from iotask.connectors.transports import TransportError, TransportOptions, open_transport
from servers import PASSWORD, USER, kill_mid_export, make_tls, start_ftp, start_sftp

FAST = {"timeout": 5.0, "backoff": 0.01}
START = time.time()


@dataclass
class Remote:
    scheme: str
    folder: Path
    """The server-side folder that ``url("/in/")`` names."""
    url: Callable[[str], str]
    options: TransportOptions
    settings: dict
    """The options as JSON, for an exporter in a subprocess."""


@pytest.fixture(params=["ftp", "ftps", "sftp"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    root = tmp_path / "served"
    (root / "in").mkdir(parents=True)
    scheme = request.param
    if scheme == "sftp":
        with start_sftp(root, tmp_path / "keys") as sftp:
            settings = {"known_hosts": str(sftp.known_hosts), **FAST}
            yield Remote(scheme, root / "in", sftp.url,
                         TransportOptions(password=PASSWORD, known_hosts=sftp.known_hosts, **FAST),
                         settings)
        return
    tls = make_tls(tmp_path / "tls") if scheme == "ftps" else None
    ca = tls.ca_path if tls else None
    with start_ftp(root, tls) as ftp:
        settings = {"ca_bundle": str(ca), **FAST} if ca else dict(FAST)
        yield Remote(scheme, root / "in", lambda path: ftp.url(path, scheme),
                     TransportOptions(password=PASSWORD, ca_bundle=ca, **FAST), settings)


def write(path: Path, data: bytes | str, age: float | None = 3600.0) -> Path:
    """A server-side file whose mtime is ``age`` seconds before the module loaded (None: now)."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if age is not None:
        os.utime(path, (START - age, START - age))
    return path


def names(files: list) -> list[str]:
    return [file.name for file in files]


def test_a_folder_import_lists_fetches_and_marks_files_imported(remote: Remote) -> None:
    data = os.urandom(200_000)
    write(remote.folder / "second.bin", data, age=100)
    write(remote.folder / "first.csv", "a,b\n1,2\n", age=200)
    write(remote.folder / "fresh.csv", "still being written", age=None)
    write(remote.folder / "old.csv.imported", "done before", age=900)
    write(remote.folder / ".upload.part", "someone's upload", age=900)
    (remote.folder / "archive").mkdir()
    transport = open_transport(remote.url("/in/"), replace(remote.options, stable_seconds=5))

    listed = transport.list()
    assert names(listed) == ["first.csv", "second.bin", "fresh.csv"]
    assert listed[1].size == len(data)
    assert listed[1].mtime == pytest.approx(START - 100, abs=1)

    ready, waiting = transport.ready(listed)
    assert (names(ready), names(waiting)) == (["first.csv", "second.bin"], ["fresh.csv"])

    destination = io.BytesIO()
    assert transport.fetch(ready[1], destination) == hashlib.sha256(data).hexdigest()
    assert destination.getvalue() == data

    for file in ready:
        transport.mark_imported(file)
    transport.close()
    assert sorted(os.listdir(remote.folder)) == [
        ".upload.part", "archive", "first.csv.imported", "fresh.csv", "old.csv.imported",
        "second.bin.imported"]

    write(remote.folder / "fresh.csv", "still being written", age=10)
    with open_transport(remote.url("/in/"), replace(remote.options, stable_seconds=5)) as again:
        assert names(again.ready(again.list())[0]) == ["fresh.csv"]


def test_glob_and_pattern_are_anchored(remote: Remote) -> None:
    for name in ("users.csv", "oldusers.csv.bak", "users.csv.bak", "users-2.csv"):
        write(remote.folder / name, name)

    with open_transport(remote.url("/in/users*.csv"), remote.options) as by_glob:
        assert sorted(names(by_glob.list())) == ["users-2.csv", "users.csv"]
    with open_transport(remote.url("/in/"), replace(remote.options, pattern="users.csv")) as one:
        assert names(one.list()) == ["users.csv"]
    with open_transport(remote.url("/in/users.csv"), remote.options) as single:
        assert names(single.list()) == ["users.csv"]


def test_a_second_import_of_the_same_name_gets_a_timestamped_name(remote: Remote) -> None:
    write(remote.folder / "users.csv.imported", "yesterday")
    write(remote.folder / "users.csv", "today")

    with open_transport(remote.url("/in/"), remote.options) as transport:
        (file,) = transport.list()
        moved = transport.mark_imported(file)

    assert moved.name != "users.csv.imported" and moved.name.endswith(".imported")
    assert ":" not in moved.name
    assert (remote.folder / moved.name).read_text() == "today"
    assert (remote.folder / "users.csv.imported").read_text() == "yesterday"


def test_a_done_marker_makes_a_file_ready_and_is_retired_with_it(remote: Remote) -> None:
    write(remote.folder / "users.csv", "x", age=None)
    write(remote.folder / "users.csv.done", "", age=None)
    write(remote.folder / "orgs.csv", "y")
    options = replace(remote.options, done_marker=".done")

    with open_transport(remote.url("/in/"), options) as transport:
        ready, waiting = transport.ready(transport.list())
        assert (names(ready), names(waiting)) == (["users.csv"], ["orgs.csv"])
        transport.mark_imported(ready[0])

    assert sorted(os.listdir(remote.folder)) == [
        "orgs.csv", "users.csv.done.imported", "users.csv.imported"]


def test_rename_on_the_server(remote: Remote) -> None:
    write(remote.folder / "users.csv", "x")
    with open_transport(remote.url("/in/users.csv"), remote.options) as transport:
        (file,) = transport.list()
        renamed = transport.rename(file, "users-failed.csv")
    assert renamed.name == "users-failed.csv"
    assert os.listdir(remote.folder) == ["users-failed.csv"]


def test_put_uploads_under_a_temporary_name_and_renames_over_the_target(
        remote: Remote, tmp_path: Path) -> None:
    write(remote.folder / "users.csv", "the previous export\n")
    local = tmp_path / "export.csv"
    local.write_bytes(b"id,name\n" + os.urandom(100_000))

    with open_transport(remote.url("/in/"), remote.options) as transport:
        digest = transport.put(local, "users.csv")

    assert digest == hashlib.sha256(local.read_bytes()).hexdigest()
    assert (remote.folder / "users.csv").read_bytes() == local.read_bytes()
    assert os.listdir(remote.folder) == ["users.csv"]


def test_an_export_killed_mid_upload_leaves_the_old_file_intact(
        remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write(remote.folder / "users.csv", "the previous export\n")
    monkeypatch.setenv("EXPORT_PASSWORD", PASSWORD)

    kill_mid_export(remote.url("/in/"), {**remote.settings, "password": {"env": "EXPORT_PASSWORD"}},
                    remote.folder, tmp_path)

    assert target.read_text() == "the previous export\n"
    with open_transport(remote.url("/in/"), remote.options) as transport:
        assert names(transport.list()) == ["users.csv"]


def test_a_missing_file_fails_at_once_naming_host_and_path_not_the_password(
        remote: Remote) -> None:
    write(remote.folder / "users.csv", "x")
    transport = open_transport(remote.url("/in/"), replace(remote.options, backoff=10.0))
    (file,) = transport.list()
    (remote.folder / "users.csv").unlink()

    started = time.monotonic()
    with pytest.raises(TransportError) as failed:
        transport.fetch(file, io.BytesIO())
    transport.close()

    message = str(failed.value)
    assert time.monotonic() - started < 4, "a permanent failure must not be retried"
    assert message.startswith(f"{remote.scheme}://{USER}@127.0.0.1:")
    assert "/in/users.csv: download failed" in message
    assert PASSWORD not in message and PASSWORD not in repr(failed.value.__cause__)


def test_a_wrong_password_is_refused_without_showing_it(remote: Remote) -> None:
    wrong = "Wrong-Password-123"
    options = replace(remote.options, password=wrong)
    with pytest.raises(TransportError) as refused:
        open_transport(remote.url("/in/"), options).list()
    assert "check the username and the password" in str(refused.value)
    assert wrong not in str(refused.value)
