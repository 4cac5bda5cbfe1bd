"""Transports: how bytes move, chosen by the URL's scheme, whatever the file format.

A format connector (csv, and the XML ones) asks for a transport and reads or writes local bytes;
it never talks FTP or HTTP itself::

    transport = open_transport("sftp://hr@files.example.com/out/", TransportOptions(
        password={"env": "HR_SFTP_PASSWORD"}, known_hosts=Path("/etc/iotask/known_hosts")))
    with transport:
        ready, waiting = transport.ready(transport.list())   # oldest first
        for file in ready:
            with tempfile.TemporaryFile() as local:
                sha256 = transport.fetch(file, local)         # retried, restarted from zero
                ...                                           # apply the rows
            transport.mark_imported(file)                     # -> <name>.imported

The interface (``Transport``, see ``base.py`` for the rules every scheme shares):

- ``open_transport(url, options) -> Transport``; no network I/O, so it also validates settings.
- ``list() -> list[RemoteFile]``: a folder URL (``.../``) gives every file not ending in
  ``.imported``, not a dotfile and not a done-marker, matching ``options.pattern`` (an anchored
  ``fnmatch`` glob on the whole name) when set; a glob URL (``.../users-*.csv``) the same,
  filtered by its glob; a single-file URL that file or nothing. Oldest first, then by name.
- ``ready(files) -> (ready, waiting)``: with ``done_marker`` (``.done``) a file is ready when
  ``<name>.done`` exists; else when unchanged since listed and its mtime is ``stable_seconds``
  old (default 10). https documents are always ready.
- ``fetch(file, destination) -> sha256 hex``: transient failures (cut connections, timeouts, FTP
  4xx replies, HTTP 5xx) are retried ``retries`` times (default 3) with jittered exponential
  backoff from ``backoff`` seconds, each retry restarting into the truncated destination.
- ``rename(file, new_name)``, ``mark_imported(file)``: server-side renames in the same folder;
  ``<name>.imported``, or ``<name>.<UTC timestamp>.imported`` when that name is taken.
- ``put(local_path, name=None) -> sha256 hex``: exports never leave a partial file under the final
  name: a temporary dotfile is written and renamed over it (``https`` POSTs instead).
- ``expand_name(template, now)``: ``users-{date:%Y%m%d}.csv``; ``resolve_secret(value)``: a string
  or ``{"env": "NAME"}``; ``confine(path, roots)``: the ``file:`` rule.

Schemes: ``file:`` (and plain paths), confined to ``options.file_roots`` — the caller passes
``IOTASK_FILE_ROOTS``, by default an ``iofiles/`` folder beside the database
(``DEFAULT_ROOT_NAME``); ``ftp:`` and ``ftps:`` (explicit FTPS); ``sftp:`` (paramiko);
``https:`` (``http:`` only with ``allow_http``). Certificates and SSH host keys are verified
(``ca_bundle``, ``known_hosts``), every network operation has ``timeout`` (default 30 s), and
every failure is a ``TransportError`` naming scheme, host and path, the cause and what to do, and
never the password.
"""

from __future__ import annotations

from importlib import import_module
from urllib.parse import urlsplit

from iotask.connectors.masking import mask
from iotask.connectors.transports.base import (
    RemoteFile,
    Transport,
    TransportError,
    TransportOptions,
    expand_name,
    resolve_secret,
)
from iotask.connectors.transports.file import DEFAULT_ROOT_NAME, confine

SCHEMES = {
    "": ("iotask.connectors.transports.file", "FileTransport"),
    "file": ("iotask.connectors.transports.file", "FileTransport"),
    "ftp": ("iotask.connectors.transports.ftp", "FtpTransport"),
    "ftps": ("iotask.connectors.transports.ftp", "FtpTransport"),
    "sftp": ("iotask.connectors.transports.sftp", "SftpTransport"),
    "https": ("iotask.connectors.transports.https", "HttpsTransport"),
    "http": ("iotask.connectors.transports.https", "HttpsTransport"),
}

EXTRAS = {"paramiko": "sftp"}  # a library a scheme needs: the extra that installs it

__all__ = [
    "DEFAULT_ROOT_NAME",
    "RemoteFile",
    "Transport",
    "TransportError",
    "TransportOptions",
    "confine",
    "expand_name",
    "open_transport",
    "resolve_secret",
]


def open_transport(url: str, options: TransportOptions | None = None) -> Transport:
    """The transport for ``url``'s scheme (a plain path means ``file:``). Scheme modules are
    imported on demand, so using ``file:`` never loads the network libraries."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise TransportError(f"URL {mask(url)!r} is malformed: {exc}") from None
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}:" for name in SCHEMES if name)
        raise TransportError(
            f"URL {mask(url)!r}: unknown scheme {scheme!r}; use one of {known}"
        )
    module, name = SCHEMES[scheme]
    try:
        transport: type[Transport] = getattr(import_module(module), name)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(exc.name or "")
        if extra is None:
            raise
        raise TransportError(f"{scheme}: URLs need the {exc.name} library, which is not "
                             f"installed: pip install 'iotask[{extra}]'") from None
    return transport(url, options or TransportOptions())
