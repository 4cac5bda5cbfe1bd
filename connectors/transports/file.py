"""``file:`` URLs (and plain paths): local folders, confined to configured base folders.

Every path is resolved with ``os.path.realpath`` and must land inside one of
``TransportOptions.file_roots``, when the transport is opened and again before every read, rename
and write, so neither ``..``, an absolute path elsewhere nor a symlink swapped in later reaches a
file iotask was not meant to touch. Relative paths are taken from the first root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from iotask.connectors.transports.base import (
    CHUNK,
    HashingReader,
    RemoteFile,
    Transport,
    TransportError,
)

DEFAULT_ROOT_NAME = "iofiles"


def confine(path: str | Path, roots: Sequence[Path]) -> Path:
    """The real path of ``path`` (symlinks resolved) when it lies inside one of ``roots``;
    otherwise a TransportError saying which folders are allowed."""
    if not roots:
        raise TransportError(
            f"file://{path}: no base folders are configured for file: URLs; set "
            "IOTASK_FILE_ROOTS (default: an iofiles/ folder beside the database)"
        )
    if ".." in Path(path).parts:
        raise TransportError(
            f"file://{path}: '..' is not allowed in file paths; name the file by its path "
            "inside the base folders"
        )
    real = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(root)) for root in roots]
    if any(real == root or real.is_relative_to(root) for root in allowed):
        return real
    shown = ", ".join(str(root) for root in allowed)
    via = "" if str(real) == os.path.abspath(path) else f" (it resolves to {real})"
    raise TransportError(
        f"file://{path}: outside the folders iotask may use{via}; allowed: {shown}. Move the "
        "file under one of them or add its folder to IOTASK_FILE_ROOTS"
    )


class FileTransport(Transport):
    """Local files; renames and exports are atomic ``os.replace`` calls in the same folder."""

    wrapped_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError,)

    def _server_path(self, url_path: str) -> str:
        if self.host not in ("", "localhost"):
            raise TransportError(
                f"file://{self.host}{url_path}: a file: URL cannot name another host; "
                "use ftp:, sftp: or a mounted folder"
            )
        roots = list(self.options.file_roots)
        if not url_path:
            raise TransportError("file: URL without a path: name a file or a folder ending in /")
        raw = url_path if os.path.isabs(url_path) or not roots else os.path.join(roots[0], url_path)
        real = str(confine(raw, roots))
        return real + "/" if url_path.endswith("/") and not real.endswith("/") else real

    def where(self, path: str) -> str:
        return f"file://{path}"

    def _check(self, path: str) -> str:
        return str(confine(path, self.options.file_roots))

    def _hint(self, exc: BaseException) -> str:
        if isinstance(exc, FileNotFoundError):
            return "check the path; the folder must exist"
        if isinstance(exc, PermissionError):
            return "give the user iotask runs as access to it"
        return "check the path and the disk"

    def _entries(self, folder: str) -> list[RemoteFile]:
        found = []
        with os.scandir(self._check(folder)) as entries:
            for entry in entries:
                try:
                    if not entry.is_file():
                        continue
                    info = entry.stat()
                except FileNotFoundError:
                    continue
                found.append(RemoteFile(entry.name, os.path.join(folder, entry.name),
                                        info.st_size, info.st_mtime))
        return found

    def _names(self, folder: str) -> set[str]:
        return set(os.listdir(self._check(folder)))

    def _download(self, file: RemoteFile, sink: Callable[[bytes], None]) -> None:
        with open(self._check(file.path), "rb") as stream:
            while chunk := stream.read(CHUNK):
                sink(chunk)

    def _rename(self, source: str, target: str) -> None:
        os.replace(self._check(source), self._check(target))

    def _upload(self, source: HashingReader, folder: str, name: str) -> None:
        target = self._check(os.path.join(folder, name))
        directory = os.path.dirname(target)
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        folder_handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder_handle)
        finally:
            os.close(folder_handle)

