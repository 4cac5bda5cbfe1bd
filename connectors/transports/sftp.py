"""``sftp:`` URLs with paramiko.

The server's host key must already be known: it is looked up in ``known_hosts`` when set, else in
the user's ``~/.ssh/known_hosts``; an unknown or changed key is refused, never learnt. Logins use
the password, or the private key file ``private_key`` (its passphrase is the password). Paths are
absolute as in ``sftp://host/data/in/``; ``sftp://host/~/in/`` is relative to the login folder.
"""

from __future__ import annotations

import errno
import logging
import socket
import stat
from collections.abc import Callable
from typing import Any, ClassVar

import paramiko
from iotask.connectors.transports.base import (
    CHUNK,
    HashingReader,
    RemoteFile,
    Transport,
    TransportError,
    TransportOptions,
    explain,
    temporary_name,
)
from paramiko.ssh_exception import NoValidConnectionsError

HANDSHAKE_TIMEOUTS = ("No existing session", "Error reading SSH protocol banner")

# paramiko logs a failed negotiation as an ERROR with a traceback; the TransportError raised here
# already says what failed, so under cron that log would only repeat it as mail-borne noise.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class UnknownHostKey(paramiko.SSHException):
    """The server's host key is not in the known_hosts file."""


class _Refuse(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(
            f"the host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in "
            "known_hosts"
        )


class SftpTransport(Transport):
    """One SSH connection with one SFTP session, opened on first use, reopened after a failure."""

    default_port: int | None = 22
    wrapped_errors: ClassVar[tuple[type[BaseException], ...]] = (
        paramiko.SSHException, OSError, EOFError,
    )

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        if not self.username:
            raise TransportError(
                f"{self.where(self.path)}: no username: put it in the URL "
                "(sftp://user@host/path) or in the username setting"
            )
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def _server_path(self, url_path: str) -> str:
        if url_path == "/~" or url_path.startswith("/~/"):
            return url_path[3:]
        return url_path

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        timeout = self.options.timeout
        client = paramiko.SSHClient()
        try:
            if self.options.known_hosts is not None:
                client.load_host_keys(str(self.options.known_hosts))
            else:
                client.load_system_host_keys()
            client.set_missing_host_key_policy(_Refuse())
            key = self.options.private_key
            client.connect(
                self.host, self.port or 22, username=self.username, password=self._password,
                key_filename=str(key) if key else None, passphrase=self._password if key else None,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                channel_timeout=timeout, allow_agent=False, look_for_keys=False,
            )
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            assert channel is not None  # an SFTP client made by open_sftp has its channel
            channel.settimeout(timeout)
        except BaseException:
            client.close()
            raise
        self._client, self._sftp = client, sftp
        return sftp

    def _reset(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException
                      | UnknownHostKey | socket.gaierror):
            return False
        # Other OSErrors carry SFTP status codes (no such file, permission denied): final.
        return isinstance(exc, paramiko.SSHException | EOFError | TimeoutError | ConnectionError
                          | NoValidConnectionsError)

    def _explain(self, exc: BaseException) -> str:
        """paramiko reports a handshake that timed out in its own words; say it plainly."""
        if isinstance(exc, paramiko.SSHException) and str(exc) in HANDSHAKE_TIMEOUTS:
            return (f"no SSH handshake within {self.options.timeout:g} s (is an SSH server "
                    "listening on that port?)")
        return explain(exc)

    def _hint(self, exc: BaseException) -> str:
        if isinstance(exc, UnknownHostKey):
            port = f"-p {self.port} " if self.port != 22 else ""
            return (f"add the server's key to the known_hosts file (ssh-keyscan {port}{self.host}"
                    " >> FILE, after checking its fingerprint) and set known_hosts to FILE")
        if isinstance(exc, paramiko.BadHostKeyException):
            return ("the server's host key changed: if the change is expected, update "
                    "known_hosts; otherwise someone may be impersonating the server")
        if isinstance(exc, paramiko.AuthenticationException):
            return "check the username and the password or key (or the variable that holds it)"
        if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
            return "check that the path exists"
        if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
            return "give the SFTP user access to the path"
        return "check that the server is reachable; the next run will try again"

    def _entries(self, folder: str) -> list[RemoteFile]:
        return [
            RemoteFile(item.filename, self._join(folder, item.filename), item.st_size,
                       float(item.st_mtime) if item.st_mtime is not None else None)
            for item in self._connect().listdir_attr(folder or ".")
            if item.st_mode is not None and stat.S_ISREG(item.st_mode)
        ]

    def _names(self, folder: str) -> set[str]:
        return set(self._connect().listdir(folder or "."))

    def _download(self, file: RemoteFile, sink: Callable[[bytes], None]) -> None:
        with self._connect().open(file.path, "rb") as stream:
            stream.prefetch(file.size)
            while chunk := stream.read(CHUNK):
                sink(chunk)

    def _rename(self, source: str, target: str) -> None:
        self._connect().rename(source, target)

    def _upload(self, source: HashingReader, folder: str, name: str) -> None:
        sftp = self._connect()
        temporary = self._join(folder, temporary_name(name))
        target = self._join(folder, name)
        # putfo only calls read(); the stub demands a whole IO[bytes]
        sftp.putfo(source, temporary, confirm=True)  # type: ignore[arg-type]
        try:
            sftp.posix_rename(temporary, target)
        except OSError:
            if name not in self._names(folder):
                raise
            # Servers without the posix-rename extension do not rename over a file.
            sftp.remove(target)
            sftp.rename(temporary, target)
