"""The shared part of every transport: options, listing rules, readiness, retries, errors.

A scheme module subclasses ``Transport`` and implements a handful of small primitives
(``_entries``, ``_names``, ``_download``, ``_rename``, ``_upload``); everything that must behave
the same whatever the scheme — which files a directory import takes and in which order, when a
file counts as completely written, how transient failures are retried, how errors read and that
they never carry a password — lives here once.
"""

from __future__ import annotations

import builtins
import fnmatch
import hashlib
import logging
import os
import posixpath
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

from iotask.connectors.errors import ConnectorError
from iotask.connectors.masking import mask, remember, remember_basic

log = logging.getLogger("iotask.transports")

IMPORTED_SUFFIX = ".imported"
GLOB_CHARS = frozenset("*?[")
CHUNK = 64 * 1024
MAX_BACKOFF = 60.0

Secret = str | Mapping[str, str] | None
T = TypeVar("T")


class TransportError(ConnectorError):
    """Bytes could not be moved; the message names scheme, host, path, cause and a remedy."""


def resolve_secret(value: Secret, what: str = "password") -> str | None:
    """A secret setting's value: the string itself, or ``{"env": NAME}`` read from the
    environment, so that no password needs to sit in ``core_connection`` for every DBA to read."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
        name = value["env"]
        found = os.environ.get(name)
        if found is None:
            raise TransportError(
                f"the {what} is to be read from the environment variable {name}, which is not "
                f"set: export {name} in the environment of iotask (e.g. /etc/default/iotask)"
            )
        if found == "":
            raise TransportError(
                f"the {what} is to be read from the environment variable {name}, which is "
                f"empty: give {name} a value in the environment of iotask"
            )
        return found
    raise TransportError(
        f'the {what} must be a string or {{"env": "VARIABLE_NAME"}}, got a {type(value).__name__}'
    )


def check_file_name(name: str) -> str:
    """A file name the transports will create: one plain path segment, no colon.

    Names come from configuration and templates; refusing separators keeps a rename or an
    export inside its folder, and refusing colons keeps names valid on every server."""
    bad = [ch for ch in ("/", "\\", "\0", ":") if ch in name]
    if not name or name in (".", "..") or bad:
        shown = ", ".join(repr(ch) for ch in bad) or "an empty or dot-only name"
        raise TransportError(
            f"file name {name!r} is not a plain file name ({shown}): use a single name without "
            "slashes, backslashes, colons or NUL"
        )
    return name


def expand_name(template: str, now: datetime) -> str:
    """Fill ``{date:FORMAT}`` fields (strftime codes), e.g. ``users-{date:%Y%m%d}.csv``.

    Only the ``date`` field is accepted, so a template cannot reach attributes or other data."""
    parts: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TransportError(f"file name template {template!r} is malformed: {exc}") from None
    for literal, field_name, spec, conversion in parsed:
        parts.append(literal)
        if field_name is None:
            continue
        if field_name != "date" or conversion:
            raise TransportError(
                f"file name template {template!r} uses {{{field_name}}}: only "
                "{date:FORMAT} with strftime codes is allowed, e.g. {date:%Y%m%d}"
            )
        parts.append(now.strftime(spec or "%Y%m%d"))
    return check_file_name("".join(parts))


@dataclass(frozen=True)
class TransportOptions:
    """How to reach a URL. Secrets (``password``, ``auth_header``) may be ``{"env": NAME}``
    and never appear in a repr."""

    username: str | None = None
    password: Secret = field(default=None, repr=False)
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    ca_bundle: Path | None = None
    known_hosts: Path | None = None
    private_key: Path | None = None
    allow_http: bool = False
    file_roots: Sequence[Path] = ()
    stable_seconds: float = 10.0
    done_marker: str | None = None
    pattern: str | None = None
    content_type: str = "application/octet-stream"
    auth_header: Secret = field(default=None, repr=False)


@dataclass(frozen=True)
class RemoteFile:
    """One file as listed: ``path`` is the transport's own path for it (a local path, a server
    path, a URL path); ``size`` and ``mtime`` (UTC epoch seconds) are None when unknown."""

    name: str
    path: str
    size: int | None
    mtime: float | None


class _Incomplete(Exception):
    """Fewer or more bytes arrived than listed: a dropped connection or a file still changing."""


class Transport:
    """Moves bytes for one URL. Not thread-safe; close it (or use ``with``) when done.

    Creating one does no network I/O, so opening and closing a transport is how a connection's
    URL and options are checked when they are saved.
    """

    scheme: str
    can_rename: ClassVar[bool] = True
    checks_size: ClassVar[bool] = True
    default_port: int | None = None
    wrapped_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, EOFError)

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.options = options
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TransportError(f"URL {mask(url)!r} is malformed: {exc}") from None
        self.scheme = parts.scheme.lower() or "file"
        self.host = parts.hostname or ""
        self.port = port or self.default_port
        self.username = options.username or (unquote(parts.username) if parts.username else None)
        url_password = unquote(parts.password) if parts.password else None
        self._password = resolve_secret(options.password) or url_password
        self._url_path = unquote(parts.path)
        if "\x00" in self._url_path:
            raise TransportError(f"URL {mask(url)!r} holds a NUL character (%00), which no file "
                                 "name can: check the URL")
        last = posixpath.basename(self._url_path)
        self.path = self._server_path(self._url_path)
        if self._url_path.endswith("/") or not last:
            self.mode, self.glob, self.target = "directory", None, None
        elif GLOB_CHARS & set(last):
            self.mode, self.glob, self.target = "glob", last, None
        else:
            self.mode, self.glob, self.target = "file", None, last
        self._auth_header = resolve_secret(options.auth_header, "auth header")
        for secret in (self._password, url_password, self._auth_header):
            remember(secret)  # whatever a library or a server says back, these are masked
        remember_basic(self.username, self._password)
        if options.done_marker is not None:
            if not options.done_marker:
                raise TransportError("done_marker must be a suffix such as .done, not empty")
            check_file_name("x" + options.done_marker)
        if options.retries < 0 or options.timeout <= 0:
            raise TransportError(f"{self.where('')}: retries must be >= 0 and timeout > 0")

    # ---------------------------------------------------------------- what a caller uses

    # In this class body ``list`` names this method, so signatures spell ``builtins.list``.
    def list(self) -> builtins.list[RemoteFile]:
        """The files this URL names, oldest first (then by name); ``[]`` when there are none.

        A directory URL (ending in ``/``) gives every file not ending in ``.imported``, not a
        dotfile (temporary uploads), not a done-marker, and matching ``pattern`` when set. A glob
        URL applies the same rules plus its anchored glob; a single-file URL gives that file."""
        entries = self._retry("list", self.folder, lambda: self._entries(self.folder))
        chosen = [entry for entry in entries if self._wanted(entry.name)]
        return sorted(chosen, key=lambda f: (f.mtime if f.mtime is not None else 0.0, f.name))

    def ready(
        self, files: Sequence[RemoteFile]
    ) -> tuple[builtins.list[RemoteFile], builtins.list[RemoteFile]]:
        """Split listed files into (ready, waiting); a waiting file is for a later run.

        With ``done_marker`` set, a file is ready exactly when ``<name><done_marker>`` exists
        (a sender that writes markers may pause mid-upload, so stability alone is not trusted).
        Otherwise a file is ready when it is unchanged (size and mtime) since it was listed and
        its mtime is at least ``stable_seconds`` old by this machine's clock: any write moves the
        mtime, so an old mtime means no write for that long. Remote servers are assumed to keep
        time within a second or so of this machine (NTP); a server clock far behind would make
        files look older than they are."""
        if not files:
            return [], []
        marker = self.options.done_marker
        if marker is not None:
            names = self._retry("list", self.folder, lambda: self._names(self.folder))
            marked = [f for f in files if f.name + marker in names]
            return marked, [f for f in files if f.name + marker not in names]
        current = {
            entry.name: entry
            for entry in self._retry("list", self.folder, lambda: self._entries(self.folder))
        }
        now = time.time()
        ready: list[RemoteFile] = []
        waiting: list[RemoteFile] = []
        for file in files:
            seen = current.get(file.name)
            stable = (
                seen is not None
                and (seen.size, seen.mtime) == (file.size, file.mtime)
                and file.mtime is not None
                and now - file.mtime >= self.options.stable_seconds
            )
            (ready if stable else waiting).append(file)
        return ready, waiting

    def fetch(self, file: RemoteFile, destination: BinaryIO) -> str:
        """Download into ``destination`` (truncated first, and again before every retry) and
        return the SHA-256 hex digest of exactly the bytes written."""

        def attempt() -> str:
            destination.seek(0)
            destination.truncate()
            digest = hashlib.sha256()
            received = 0

            def sink(chunk: bytes) -> None:
                nonlocal received
                digest.update(chunk)
                destination.write(chunk)
                received += len(chunk)

            self._download(file, sink)
            if self.checks_size and file.size is not None and received != file.size:
                raise _Incomplete(
                    f"received {received} bytes, the listing said {file.size} (connection cut, "
                    "or the file changed since it was listed)"
                )
            destination.flush()
            return digest.hexdigest()

        return self._retry("download", file.path, attempt)

    def rename(self, file: RemoteFile, new_name: str) -> RemoteFile:
        """Rename on the server, in the same folder. A retry after a lost reply that finds the
        rename already done counts as success."""
        self._require_rename(file)
        target = self._join(self._parent(file.path), check_file_name(new_name))
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            if tries > 1:
                names = self._names(self._parent(file.path))
                if file.name not in names and new_name in names:
                    return
            self._rename(file.path, target)

        self._retry("rename", file.path, attempt)
        return RemoteFile(new_name, target, file.size, file.mtime)

    def mark_imported(self, file: RemoteFile) -> RemoteFile:
        """Rename to ``<name>.imported`` (``<name>.<UTC timestamp>.imported`` when taken) so a
        directory import never takes the file again; a done-marker is retired the same way."""
        self._require_rename(file)
        names = self._retry("list", self.folder, lambda: self._names(self._parent(file.path)))
        done = self.rename(file, imported_name(file.name, names))
        marker = self.options.done_marker
        if marker is not None and file.name + marker in names:
            marker_file = RemoteFile(
                file.name + marker, self._join(self._parent(file.path), file.name + marker),
                None, None,
            )
            self.rename(marker_file, imported_name(marker_file.name, names | {done.name}))
        return done

    def quarantine(self, file: RemoteFile, folder: str) -> RemoteFile:
        """Move a file that failed into ``folder``, a subfolder of its own that must exist, so
        that the next runs leave it alone until a person looks; a taken name gets a
        timestamp."""
        self._require_rename(file)
        parent = self._join(self._parent(file.path), check_file_name(folder))
        names = self._retry("list", parent, lambda: self._names(parent))
        name = file.name
        if name in names:
            name = f"{file.name}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        target = self._join(parent, name)
        self._retry("rename", file.path, lambda: self._rename(file.path, target))
        return RemoteFile(name, target, file.size, file.mtime)

    def put(self, local_path: Path, name: str | None = None) -> str:
        """Export a local file as ``name`` in the URL's folder (default: the URL's own file
        name), never leaving a partial file under that name; return the SHA-256 hex digest of
        the bytes sent. The local file is read once per attempt."""
        final = check_file_name(name or self.target or "")

        def attempt() -> str:
            with open(local_path, "rb") as stream:
                source = HashingReader(stream)
                self._upload(source, self.folder, final)
            return source.hexdigest()

        return self._retry("upload", self._join(self.folder, final), attempt)

    def close(self) -> None:
        """Drop any open connection."""
        self._reset()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where(self.path)}>"

    # ---------------------------------------------------------------- helpers for schemes

    @property
    def folder(self) -> str:
        """The folder the URL lists or writes into, in the transport's own path form."""
        return self.path if self.mode == "directory" else self._parent(self.path)

    def _server_path(self, url_path: str) -> str:
        """The URL's (decoded) path as this transport's own path."""
        return url_path

    def where(self, path: str) -> str:
        """``scheme://user@host:port/path`` for messages: never the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port and self.port != self.default_port else ""
        shown = path if path.startswith("/") else "/" + path
        return f"{self.scheme}://{user}{host}{port}{shown}"

    def _require_rename(self, file: RemoteFile) -> None:
        if not self.can_rename:
            raise TransportError(
                f"{self.where(file.path)}: {self.scheme} cannot rename files; use a transport "
                "that can (file, ftp, sftp) or rely on the checksum record to skip re-imports"
            )

    def _wanted(self, name: str) -> bool:
        if self.mode == "file":
            return name == self.target
        marker = self.options.done_marker
        if name.endswith(IMPORTED_SUFFIX) or name.startswith("."):
            return False
        if marker is not None and name.endswith(marker):
            return False
        if self.glob is not None and not fnmatch.fnmatchcase(name, self.glob):
            return False
        pattern = self.options.pattern
        return pattern is None or fnmatch.fnmatchcase(name, pattern)

    def _parent(self, path: str) -> str:
        head = posixpath.dirname(path.rstrip("/"))
        return head + "/" if head and not head.endswith("/") else head

    def _join(self, folder: str, name: str) -> str:
        return posixpath.join(folder, name) if folder else name

    def _retry(self, action: str, path: str, operation: Callable[[], T]) -> T:
        """Run ``operation``; a transient failure (a cut connection, a busy server) often passes,
        so drop the connection and try again after a jittered exponential backoff, up to
        ``retries`` more times, then raise a ``TransportError``. tenacity is imported here, not
        at the top, so that importing the transports (cron's run-due start-up) does not load it."""
        import tenacity

        caught: tuple[type[BaseException], ...] = (_Incomplete, *self.wrapped_errors)
        failures = 0

        def attempt() -> T:
            nonlocal failures
            try:
                return operation()
            except TransportError:
                raise
            except caught:
                failures += 1
                self._reset()
                raise

        def transient(exc: BaseException) -> bool:
            if isinstance(exc, TransportError) or not isinstance(exc, caught):
                return False
            return isinstance(exc, _Incomplete) or self._transient(exc)

        def announce(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            # tenacity calls before_sleep after a failed attempt, once it has chosen the sleep
            assert exc is not None and state.next_action is not None
            log.warning("%s %s failed (%s); retrying in %.1f s", action, self.where(path),
                        self._scrub(self._explain(exc)), state.next_action.sleep)

        # delay = backoff * 2**(failures-1), at most MAX_BACKOFF; wait delay/2 plus 0..delay/2
        half, cap = self.options.backoff / 2, MAX_BACKOFF / 2
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(transient),
            stop=tenacity.stop_after_attempt(self.options.retries + 1),
            wait=(tenacity.wait_exponential(multiplier=half, max=cap)
                  + tenacity.wait_random_exponential(multiplier=half, max=cap)),
            sleep=_nap,
            before_sleep=announce,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransportError:
            raise
        except caught as exc:
            tried = f" (after {failures} attempts)" if failures > 1 else ""
            raise self._error(action, path, exc, tried) from exc

    def _error(self, action: str, path: str, exc: BaseException, tried: str) -> TransportError:
        return TransportError(self._scrub(
            f"{self.where(path)}: {action} failed{tried}: {self._explain(exc)}; {self._hint(exc)}"
        ))

    def _scrub(self, text: str) -> str:
        """Belt and braces: no library or server message may carry a credential out."""
        return mask(text)

    # ---------------------------------------------------------------- per-scheme primitives

    def _transient(self, exc: BaseException) -> bool:
        """Whether retrying might help (connection cut, timeout, a 4xx FTP reply, ...)."""
        return False

    def _explain(self, exc: BaseException) -> str:
        """The cause, as the message states it."""
        return explain(exc)

    def _hint(self, exc: BaseException) -> str:
        """What the operator should do about ``exc``."""
        return "check the URL, the server and the credentials; the next run will try again"

    def _reset(self) -> None:
        """Forget the connection (after a failure, or on close)."""

    def _entries(self, folder: str) -> builtins.list[RemoteFile]:
        """The regular files in ``folder``."""
        raise NotImplementedError

    def _names(self, folder: str) -> set[str]:
        """Every name in ``folder`` (files, folders, anything), to detect collisions."""
        return {entry.name for entry in self._entries(folder)}

    def _download(self, file: RemoteFile, sink: Callable[[bytes], None]) -> None:
        raise NotImplementedError

    def _rename(self, source: str, target: str) -> None:
        raise NotImplementedError

    def _upload(self, source: HashingReader, folder: str, name: str) -> None:
        """Upload to a temporary name in ``folder``, then rename it over ``name``."""
        raise NotImplementedError


def _nap(seconds: float) -> None:
    """Sleep between retries; a backoff of 0 (as in tests) does not sleep at all."""
    if seconds > 0:
        time.sleep(seconds)


def imported_name(name: str, taken: set[str] | frozenset[str]) -> str:
    """``<name>.imported``, or with a UTC timestamp (no colons) when that name is taken."""
    candidate = name + IMPORTED_SUFFIX
    if candidate not in taken:
        return candidate
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = f"{name}.{stamp}{IMPORTED_SUFFIX}"
    counter = 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}.{stamp}-{counter}{IMPORTED_SUFFIX}"
    return candidate


def temporary_name(name: str) -> str:
    """The name an upload is written under before it is renamed into place (a dotfile, so
    directory imports on the receiving side skip it)."""
    return f".{name}.part"


class HashingReader:
    """A binary stream that hashes and counts what is read from it, so an upload reads the
    local file once (it may be a pipe) and still reports the digest of exactly what it sent.
    ``mode``, ``fileno`` and ``tell`` let requests size the body for a Content-Length."""

    mode = "rb"

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        self.count += len(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def fileno(self) -> int:
        return self._stream.fileno()

    def tell(self) -> int:
        return self._stream.tell()


def explain(exc: BaseException) -> str:
    """``Type: message`` of an exception, for error messages."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    if isinstance(exc, TimeoutError | _Incomplete) or type(exc).__name__ in text:
        return text
    return f"{type(exc).__name__}: {text}"
