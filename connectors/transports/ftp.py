"""``ftp:`` and ``ftps:`` URLs with the standard library's ftplib.

``ftps:`` means explicit FTPS (``AUTH TLS`` on the ordinary port 21, then ``PROT P`` so data
connections are encrypted too); implicit FTPS (port 990) is not supported. The certificate is
verified against the system CAs, or ``ca_bundle`` when set. Paths follow RFC 1738: relative to
the login folder, ``%2F`` at the start for an absolute path (``ftp://host/%2Fdata/in/``).
Listings use MLSD (UTC times); servers without it fall back to NLST + SIZE + MDTM.
"""

from __future__ import annotations

import calendar
import contextlib
import ftplib
import posixpath
import socket
import ssl
import time
from collections.abc import Callable
from typing import ClassVar

from iotask.connectors.transports.base import (
    HashingReader,
    RemoteFile,
    Transport,
    TransportOptions,
    temporary_name,
)

NOT_IMPLEMENTED = ("500", "501", "502", "504")


class FtpTransport(Transport):
    """One control connection, opened on first use and reopened after a failure."""

    default_port: int | None = 21
    wrapped_errors: ClassVar[tuple[type[BaseException], ...]] = ftplib.all_errors

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        self.tls = self.scheme == "ftps"
        self._ftp: ftplib.FTP | None = None

    def _server_path(self, url_path: str) -> str:
        return url_path[1:] if url_path.startswith("/") else url_path

    def _connect(self) -> ftplib.FTP:
        if self._ftp is not None:
            return self._ftp
        timeout = self.options.timeout
        if self.tls:
            cafile = str(self.options.ca_bundle) if self.options.ca_bundle else None
            context = ssl.create_default_context(cafile=cafile)
            ftp: ftplib.FTP = ftplib.FTP_TLS(context=context, timeout=timeout)
        else:
            ftp = ftplib.FTP(timeout=timeout)
        try:
            ftp.connect(self.host, self.port or 21, timeout=timeout)
            ftp.login(self.username or "anonymous", self._password or "")
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
        except BaseException:
            ftp.close()
            raise
        self._ftp = ftp
        return ftp

    def _reset(self) -> None:
        if self._ftp is not None:
            self._ftp.close()
            self._ftp = None

    def close(self) -> None:
        if self._ftp is not None:
            with contextlib.suppress(*ftplib.all_errors):
                self._ftp.quit()
        self._reset()

    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, ssl.SSLCertVerificationError | socket.gaierror):
            return False
        return isinstance(exc, ftplib.error_temp | OSError | EOFError)

    def _hint(self, exc: BaseException) -> str:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ("the server's certificate is not trusted: set ca_bundle to the CA file that "
                    "signed it (or fix the host name in the URL)")
        text = str(exc)
        if text.startswith(("5", "4")) and ("TLS" in text or "SSL" in text):
            return "the server wants TLS: use an ftps: URL"
        if text.startswith("530"):
            return "check the username and the password (or the variable that holds it)"
        if text.startswith("550"):
            return "check that the path exists and the FTP user may access it"
        if isinstance(exc, socket.gaierror):
            return "check the host name"
        return "check that the server is reachable; the next run will try again"

    def _entries(self, folder: str) -> list[RemoteFile]:
        ftp = self._connect()
        try:
            listing = list(ftp.mlsd(folder, facts=["type", "size", "modify"]))
        except ftplib.error_perm as exc:
            if not str(exc).startswith(NOT_IMPLEMENTED):
                raise
            return self._entries_without_mlsd(ftp, folder)
        return [
            RemoteFile(name, self._join(folder, name), int(facts["size"]) if "size" in facts
                       else None, _ftp_time(facts.get("modify")))
            for name, facts in listing
            if facts.get("type") == "file"
        ]

    def _entries_without_mlsd(self, ftp: ftplib.FTP, folder: str) -> list[RemoteFile]:
        found = []
        for name in self._nlst(ftp, folder):
            path = self._join(folder, name)
            try:
                size = ftp.size(path)
            except ftplib.error_perm:
                continue
            try:
                mtime = _ftp_time(ftp.voidcmd(f"MDTM {path}").split()[-1])
            except ftplib.error_perm:
                mtime = None
            found.append(RemoteFile(name, path, size, mtime))
        return found

    def _nlst(self, ftp: ftplib.FTP, folder: str) -> list[str]:
        try:
            return [posixpath.basename(name.rstrip("/")) for name in ftp.nlst(folder)]
        except ftplib.error_perm as exc:
            if "no files" in str(exc).lower():
                return []
            raise

    def _names(self, folder: str) -> set[str]:
        ftp = self._connect()
        try:
            return {name for name, _ in ftp.mlsd(folder, facts=["type"])} - {".", ".."}
        except ftplib.error_perm as exc:
            if not str(exc).startswith(NOT_IMPLEMENTED):
                raise
            return set(self._nlst(ftp, folder))

    def _download(self, file: RemoteFile, sink: Callable[[bytes], None]) -> None:
        self._connect().retrbinary(f"RETR {file.path}", sink, blocksize=64 * 1024)

    def _rename(self, source: str, target: str) -> None:
        self._connect().rename(source, target)

    def _upload(self, source: HashingReader, folder: str, name: str) -> None:
        ftp = self._connect()
        temporary = self._join(folder, temporary_name(name))
        target = self._join(folder, name)
        ftp.storbinary(f"STOR {temporary}", source, blocksize=64 * 1024)
        stored = ftp.size(temporary)
        if stored is not None and stored != source.count:
            raise EOFError(f"the server stored {stored} of {source.count} bytes")
        try:
            ftp.rename(temporary, target)
        except ftplib.error_perm:
            if name not in self._names(folder):
                raise
            # Servers on Windows refuse to rename over an existing file: replace it in two steps.
            ftp.delete(target)
            ftp.rename(temporary, target)


def _ftp_time(value: str | None) -> float | None:
    """An MLSD/MDTM ``YYYYMMDDHHMMSS[.fff]`` UTC time as epoch seconds."""
    if not value:
        return None
    whole, _, fraction = value.partition(".")
    try:
        moment = time.strptime(whole, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return calendar.timegm(moment) + (float("0." + fraction) if fraction.isdigit() else 0.0)
