"""What the file connectors (csv, xml) share about moving their files: the transport settings,
and writing an export so that no reader ever sees half a file.

An export is written to a temporary file beside a local target and renamed over it, or written
to a private temporary folder and uploaded (under a temporary name renamed on the server; https:
POSTs it). The guards review it first: a dry run or a held export changes nothing. A file name
may hold ``{date:%Y%m%d}``: the date now in the configured time zone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import IO, Any

from iotask.connectors.context import ChangeSet, RunContext
from iotask.connectors.errors import ConnectorError
from iotask.connectors.settings import Setting
from iotask.connectors.transports import Transport, TransportOptions, expand_name

DEFAULT_STABLE_SECONDS = 10
CONSUME = ("rename", "keep")

TRANSPORT_SETTINGS = (
    Setting("username", help="login for ftp:, sftp: and https: (or user@ in the URL)"),
    Setting("password", secret=True,
            help="password; env:VARIABLE reads it from the environment at run time"),
    Setting("private_key", help="sftp: SSH private key file"),
    Setting("known_hosts", help="sftp: known_hosts file the server's key must be in "
                                "(default: ~/.ssh/known_hosts)"),
    Setting("ca_bundle", help="ftps:/https: CA certificates (PEM) to trust instead of the "
                              "system's"),
    Setting("allow_http", "bool", help="allow plain, unencrypted http: URLs"),
    Setting("auth_header", secret=True,
            help="https: Authorization header value, or 'Header-Name: value'"),
    Setting("timeout", "int", help="seconds for each network operation; default 30"),
    Setting("retries", "int", help="retries of a failed transfer; default 3"),
    Setting("stable_seconds", "int",
            help="take a file only once unchanged for this long; default 10"),
    Setting("done_marker", help="take a file only when <name><done_marker> exists, e.g. .done"),
    Setting("pattern", help="folder URLs: only file names matching this glob (anchored)"),
)
INTAKE_SETTINGS = (  # what becomes of an imported file
    Setting("quarantine", help="a subfolder (it must exist) that a file failing to import "
                               "is moved to; default: it stays for the next run"),
    Setting("consume", choices=CONSUME,
            help="after a file is imported: rename it to <name>.imported (the default for "
                 "folder and glob URLs) or keep it (the default for one file)"),
)

Body = Callable[[IO[bytes]], int]  # writes the export's bytes; returns the rows written


def transport_options(params: dict[str, Any], roots: list[Path],
                      content_type: str) -> TransportOptions:
    """The transport settings of a file connection, as the transports take them."""
    p = params
    return TransportOptions(
        username=p.get("username"), password=p.get("password"),
        timeout=float(p.get("timeout") or 30), retries=p.get("retries", 3),
        ca_bundle=_path(p.get("ca_bundle")), known_hosts=_path(p.get("known_hosts")),
        private_key=_path(p.get("private_key")), allow_http=p.get("allow_http", False),
        file_roots=roots,
        stable_seconds=float(p.get("stable_seconds", DEFAULT_STABLE_SECONDS)),
        done_marker=p.get("done_marker"), pattern=p.get("pattern"),
        content_type=content_type, auth_header=p.get("auth_header"))


def dated(url: str, tz: tzinfo) -> str:
    """The URL with ``{date:FORMAT}`` in its file name filled in with the date and time now in
    the configured zone (IOTASK_TIMEZONE), the one every other time is shown in."""
    folder, slash, name = url.rpartition("/")
    if "{date" not in name:
        return url
    return folder + slash + expand_name(name, datetime.now(tz))


def export(transport: Transport, body: Body, context: RunContext,
           error: type[ConnectorError], example: str) -> None:
    """Write an export through ``transport`` (open on the dated URL; the caller closes it) and
    count its rows as inserted. ``body`` writes the bytes; ``error`` is the connector's error
    class; ``example`` a file name for the message when the URL names a folder."""
    if transport.mode != "file":
        raise error(f"{transport.where(transport.path)}: an export needs a file name at the end "
                    f"of the URL (e.g. .../{example}), not a folder or a pattern")
    if transport.scheme == "file":
        written = _write_local(Path(transport.path), body, context, error)
    else:
        written = _write_remote(transport, body, context, error)
    if written is not None:
        context.counts.inserted += written


def _write_local(target: Path, body: Body, context: RunContext,
                 error: type[ConnectorError]) -> int | None:
    if not target.parent.is_dir():
        raise error(f"cannot write {target}: folder {target.parent} does not exist")
    sweep(target)
    temp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise error(f"cannot write in folder {target.parent}: {exc.strerror}") from None
    try:
        with open(descriptor, "wb") as out:
            written = body(out)
            out.flush()
            os.fsync(out.fileno())
        if target.exists():
            shutil.copymode(target, temp)  # keep the permissions, as overwriting would
        if not context.review(ChangeSet(inserted=written)):
            temp.unlink()
            return None
        context.check_lease()
        os.replace(temp, target)
    except OSError as exc:  # a full disk, a file-size limit: say which file
        temp.unlink(missing_ok=True)
        raise error(f"cannot write {target}: {exc.strerror or exc}; the old file is "
                    "unchanged") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written


def _write_remote(transport: Transport, body: Body, context: RunContext,
                  error: type[ConnectorError]) -> int | None:
    with tempfile.TemporaryDirectory(prefix="iotask-export-") as folder:
        local = Path(folder) / "export"
        try:
            with open(local, "wb") as out:
                written = body(out)
        except OSError as exc:
            raise error(f"cannot write the export for {transport.where(transport.path)}"
                        f" in {folder}: {exc.strerror or exc}") from None
        if not context.review(ChangeSet(inserted=written)):
            return None
        context.check_lease()
        transport.put(local, transport.target)
    return written


def sweep(target: Path) -> None:
    """Remove what an export of ``target`` killed mid-write left: its temporary files older than
    an hour (a younger one may belong to an export running now)."""
    an_hour_ago = time.time() - 3600
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < an_hour_ago:
                stale.unlink()


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None
