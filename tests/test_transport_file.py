"""The rules every transport shares, through ``file:``: which files a folder import takes and in
which order, readiness, checksums, renames, atomic exports, confinement, names and secrets."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import datetime
from pathlib import Path

import pytest
from iotask.connectors.errors import ConnectorError
from iotask.connectors.transports import (
    TransportError,
    TransportOptions,
    confine,
    expand_name,
    open_transport,
    resolve_secret,
)
from servers import kill_mid_export


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "iofiles"
    (folder / "in").mkdir(parents=True)
    return folder


def options(root: Path, **changes: object) -> TransportOptions:
    return TransportOptions(file_roots=[root], **changes)  # type: ignore[arg-type]


START = time.time()


def write(path: Path, data: bytes | str, age: float | None = 3600.0) -> Path:
    """A file whose mtime is ``age`` seconds before this module was loaded (None: now)."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if age is not None:
        moment = START - age
        os.utime(path, (moment, moment))
    return path


def names(files: list) -> list[str]:
    return [file.name for file in files]


def test_a_folder_lists_oldest_first_and_skips_imported_dotfiles_and_markers(root: Path) -> None:
    folder = root / "in"
    write(folder / "b.csv", "b", age=100)
    write(folder / "a.csv", "a", age=100)
    write(folder / "old.csv", "o", age=500)
    write(folder / "new.csv", "n", age=10)
    write(folder / "done.csv.imported", "x", age=900)
    write(folder / ".upload.csv.part", "x", age=900)
    write(folder / "a.csv.done", "", age=900)
    (folder / "sub").mkdir()

    transport = open_transport(f"file://{folder}/", options(root, done_marker=".done"))

    assert names(transport.list()) == ["old.csv", "a.csv", "b.csv", "new.csv"]
    assert transport.list()[0].path == str(folder / "old.csv")


def test_the_pattern_and_glob_urls_are_anchored(root: Path) -> None:
    folder = root / "in"
    for name in ("users.csv", "oldusers.csv.bak", "users.csv.bak", "users-2.csv", "Users.csv"):
        write(folder / name, name)

    by_pattern = open_transport(f"file://{folder}/", options(root, pattern="users.csv"))
    by_glob = open_transport(f"file://{folder}/users*.csv", options(root))

    assert names(by_pattern.list()) == ["users.csv"]
    assert sorted(names(by_glob.list())) == ["users-2.csv", "users.csv"]


def test_a_single_file_url_gives_that_file_or_nothing(root: Path) -> None:
    write(root / "in" / "users.csv", "a,b\n")
    write(root / "in" / "other.csv", "a,b\n")

    assert names(open_transport(f"file://{root}/in/users.csv", options(root)).list()) == [
        "users.csv"]
    assert open_transport(f"file://{root}/in/absent.csv", options(root)).list() == []


def test_relative_paths_and_plain_paths_are_taken_from_the_first_root(root: Path) -> None:
    write(root / "in" / "users.csv", "a")

    assert names(open_transport("in/users.csv", options(root)).list()) == ["users.csv"]
    assert names(open_transport("file:in/", options(root)).list()) == ["users.csv"]


def test_a_missing_folder_is_an_error_naming_it(root: Path) -> None:
    with pytest.raises(TransportError, match=r"file://.*/nowhere/.*list failed.*folder must exist"):
        open_transport(f"file://{root}/nowhere/", options(root)).list()


def test_a_recently_modified_file_waits_until_stable(root: Path) -> None:
    old = write(root / "in" / "old.csv", "old")
    fresh = write(root / "in" / "fresh.csv", "fresh", age=None)
    transport = open_transport(f"file://{root}/in/", options(root, stable_seconds=5))

    ready, waiting = transport.ready(transport.list())
    assert (names(ready), names(waiting)) == (["old.csv"], ["fresh.csv"])

    write(fresh, "fresh", age=6)
    ready, waiting = transport.ready(transport.list())
    assert (names(ready), names(waiting)) == (["old.csv", "fresh.csv"], [])
    assert old.exists()


def test_a_file_that_changes_after_listing_is_not_ready_even_with_an_old_mtime(root: Path) -> None:
    path = write(root / "in" / "users.csv", "1234")
    transport = open_transport(f"file://{root}/in/", options(root, stable_seconds=5))
    listed = transport.list()
    mtime = path.stat().st_mtime

    with path.open("ab") as stream:
        stream.write(b"more")
    os.utime(path, (mtime, mtime))

    assert transport.ready(listed) == ([], listed)


def test_stability_is_measured_in_real_time(root: Path) -> None:
    write(root / "in" / "users.csv", "1234", age=None)
    transport = open_transport(f"file://{root}/in/", options(root, stable_seconds=0.3))

    assert transport.ready(transport.list())[0] == []
    time.sleep(0.35)
    assert names(transport.ready(transport.list())[0]) == ["users.csv"]


def test_with_a_done_marker_only_marked_files_are_ready_and_the_marker_is_retired(
        root: Path) -> None:
    folder = root / "in"
    write(folder / "a.csv", "a", age=None)
    write(folder / "a.csv.done", "", age=None)
    write(folder / "b.csv", "b")
    transport = open_transport(f"file://{folder}/", options(root, done_marker=".done"))

    ready, waiting = transport.ready(transport.list())
    assert (names(ready), names(waiting)) == (["a.csv"], ["b.csv"])

    transport.mark_imported(ready[0])
    assert sorted(os.listdir(folder)) == ["a.csv.done.imported", "a.csv.imported", "b.csv"]


def test_fetch_returns_the_sha256_of_the_bytes_and_restarts_into_a_truncated_destination(
        root: Path) -> None:
    data = os.urandom(300_000) + b"\r\n\x00end"
    write(root / "in" / "data.bin", data)
    transport = open_transport(f"file://{root}/in/data.bin", options(root))
    destination = io.BytesIO(b"stale bytes that are longer than nothing" * 10_000)

    digest = transport.fetch(transport.list()[0], destination)

    assert digest == hashlib.sha256(data).hexdigest()
    assert destination.getvalue() == data


def test_mark_imported_renames_and_never_overwrites_an_earlier_import(root: Path) -> None:
    folder = root / "in"
    write(folder / "users.csv.imported", "first")
    write(folder / "users.csv", "second")
    transport = open_transport(f"file://{folder}/", options(root))

    (file,) = transport.list()
    moved = transport.mark_imported(file)

    assert moved.name.startswith("users.csv.") and moved.name.endswith(".imported")
    assert ":" not in moved.name and moved.name != "users.csv.imported"
    assert (folder / moved.name).read_text() == "second"
    assert (folder / "users.csv.imported").read_text() == "first"
    assert transport.list() == []


def test_rename_stays_in_the_folder(root: Path) -> None:
    write(root / "in" / "users.csv", "x")
    transport = open_transport(f"file://{root}/in/", options(root))
    (file,) = transport.list()

    with pytest.raises(TransportError, match="not a plain file name"):
        transport.rename(file, "../escaped.csv")
    renamed = transport.rename(file, "users-renamed.csv")

    assert renamed.path == str(root / "in" / "users-renamed.csv")
    assert os.listdir(root / "in") == ["users-renamed.csv"]


def test_put_replaces_the_file_whole_and_keeps_its_permissions(root: Path, tmp_path: Path) -> None:
    target = write(root / "in" / "users.csv", "old content")
    target.chmod(0o640)
    local = write(tmp_path / "export.csv", "new content\n")
    transport = open_transport(f"file://{root}/in/", options(root))

    digest = transport.put(local, "users.csv")

    assert target.read_text() == "new content\n"
    assert digest == hashlib.sha256(b"new content\n").hexdigest()
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(root / "in") == ["users.csv"]


def test_put_uses_the_url_file_name_and_a_date_template(root: Path, tmp_path: Path) -> None:
    local = write(tmp_path / "export.csv", "x")
    transport = open_transport(f"file://{root}/in/users.csv", options(root))

    transport.put(local)
    transport.put(local, expand_name("users-{date:%Y%m%d}.csv", datetime(2026, 3, 9, 2, 30)))

    assert sorted(os.listdir(root / "in")) == ["users-20260309.csv", "users.csv"]


def test_an_export_killed_mid_write_leaves_the_old_file_intact(root: Path, tmp_path: Path) -> None:
    target = write(root / "in" / "users.csv", "the previous export\n")

    kill_mid_export(f"file://{root}/in/", {"file_roots": [str(root)]}, root / "in", tmp_path)

    assert target.read_text() == "the previous export\n"
    transport = open_transport(f"file://{root}/in/", options(root))
    assert names(transport.list()) == ["users.csv"]


# ---------------------------------------------------------------------------- confinement


def test_paths_outside_the_roots_are_refused(root: Path) -> None:
    with pytest.raises(TransportError, match=r"file:///etc/passwd: outside the folders.*allowed"):
        open_transport("file:///etc/passwd", options(root))
    with pytest.raises(TransportError, match=r"'\.\.' is not allowed"):
        open_transport(f"file://{root}/in/../../secret.csv", options(root))
    with pytest.raises(TransportError, match=r"'\.\.' is not allowed"):
        open_transport("../secret.csv", options(root))
    with pytest.raises(TransportError, match="no base folders are configured"):
        open_transport(f"file://{root}/in/", TransportOptions())
    with pytest.raises(TransportError, match="cannot name another host"):
        open_transport("file://fileserver/etc/passwd", options(root))


def test_an_outward_symlink_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "secret.csv", "secret")
    (root / "in" / "secret.csv").symlink_to(outside / "secret.csv")
    (root / "linked").symlink_to(outside)

    with pytest.raises(TransportError, match=f"resolves to {outside}/secret.csv"):
        open_transport(f"file://{root}/in/secret.csv", options(root))
    with pytest.raises(TransportError, match="outside the folders"):
        open_transport(f"file://{root}/linked/", options(root))
    transport = open_transport(f"file://{root}/in/", options(root))
    (listed,) = transport.list()
    with pytest.raises(TransportError, match="outside the folders"):
        transport.fetch(listed, io.BytesIO())


def test_a_symlink_that_stays_inside_is_followed(root: Path) -> None:
    write(root / "in" / "real.csv", "data")
    (root / "in" / "alias.csv").symlink_to(root / "in" / "real.csv")

    assert confine(root / "in" / "alias.csv", [root]) == root / "in" / "real.csv"


# ------------------------------------------------------------------------ names and secrets


def test_expand_name_fills_dates_and_refuses_anything_else() -> None:
    now = datetime(2026, 11, 22, 6, 5, 4)

    assert expand_name("users-{date:%Y%m%d}.csv", now) == "users-20261122.csv"
    assert expand_name("users-{date:%Y%m%d-%H%M%S}.csv", now) == "users-20261122-060504.csv"
    assert expand_name("plain.csv", now) == "plain.csv"
    with pytest.raises(TransportError, match="only {date:FORMAT}"):
        expand_name("{date.__class__}.csv", now)
    with pytest.raises(TransportError, match="only {date:FORMAT}"):
        expand_name("{user}.csv", now)
    with pytest.raises(TransportError, match="not a plain file name"):
        expand_name("{date:%H:%M}.csv", now)
    with pytest.raises(TransportError, match="not a plain file name"):
        expand_name("{date:%Y/%m}.csv", now)


def test_resolve_secret_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HR_FTP_PASSWORD", "from-the-env")
    monkeypatch.delenv("HR_MISSING_PASSWORD", raising=False)

    assert resolve_secret("plain") == "plain"
    assert resolve_secret(None) is None
    assert resolve_secret({"env": "HR_FTP_PASSWORD"}) == "from-the-env"
    with pytest.raises(TransportError, match="environment variable HR_MISSING_PASSWORD, which is "
                                             "not set"):
        resolve_secret({"env": "HR_MISSING_PASSWORD"})
    with pytest.raises(TransportError, match='{"env": "VARIABLE_NAME"}'):
        resolve_secret({"file": "/etc/secret"})  # type: ignore[dict-item]


def test_an_unset_password_variable_fails_when_the_transport_opens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HR_MISSING_PASSWORD", raising=False)
    with pytest.raises(ConnectorError, match="HR_MISSING_PASSWORD"):
        open_transport("ftp://hr@ftp.example.com/in/",
                       TransportOptions(password={"env": "HR_MISSING_PASSWORD"}))


def test_passwords_never_show_in_reprs_or_errors() -> None:
    secret = "Ultra-Secret-42"
    options = TransportOptions(password=secret, auth_header=f"Bearer {secret}")
    transport = open_transport(f"ftp://hr:{secret}@ftp.example.com/in/", TransportOptions())

    assert secret not in repr(options)
    assert secret not in repr(transport)
    assert transport.where("in/x.csv") == "ftp://hr@ftp.example.com/in/x.csv"
    with pytest.raises(TransportError) as refused:
        open_transport(f"gopher://hr:{secret}@example.com/", options)
    assert secret not in str(refused.value) and "unknown scheme 'gopher'" in str(refused.value)


def test_http_is_refused_unless_allowed() -> None:
    with pytest.raises(TransportError, match="unencrypted.*allow_http"):
        open_transport("http://example.com/users.csv", TransportOptions())

    transport = open_transport("http://example.com/users.csv", TransportOptions(allow_http=True))
    assert transport.where(transport.path) == "http://example.com/users.csv"
