"""``https:`` URLs with requests (``http:`` only with ``allow_http``).

An https URL names one document: ``list`` asks for its headers (a 404 means no file yet),
``fetch`` downloads it, and every listed document is ready (a web server hands out whole
responses). There are no renames: a caller relies on checksums to skip a document it has
already imported. ``put`` POSTs the file with ``content_type``, optional basic auth and an
optional ``auth_header`` (``Bearer TOKEN`` for Authorization, or ``Header-Name: value``);
for a URL ending in ``/`` the file name is appended. Certificates are verified against
the system CAs, or only against ``ca_bundle`` when it is set. 5xx, 408, 429, connection failures
and timeouts are retried; other 4xx fail at once, quoting the start of the response body.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from iotask.connectors.transports.base import (
    CHUNK,
    HashingReader,
    RemoteFile,
    Transport,
    TransportError,
    TransportOptions,
    explain,
)

QUOTED = 500
TRANSIENT_STATUS = {408, 429}
HEADER_FORM = re.compile(r"^([A-Za-z0-9-]+):\s*(.*)$")


class HttpStatus(Exception):
    """The server answered with a status that is not success."""

    def __init__(self, status: int, reason: str, body: str, location: str | None) -> None:
        said = f'; the server said: "{body}"' if body else ""
        super().__init__(f"HTTP {status} {reason}{said}")
        self.status = status
        self.location = location


class HttpsTransport(Transport):
    """One requests session; no connection state to lose beyond its pool."""

    default_port: int | None = 443
    can_rename = False
    checks_size = False
    wrapped_errors: ClassVar[tuple[type[BaseException], ...]] = (
        requests.RequestException, OSError, HttpStatus,
    )

    def __init__(self, url: str, options: TransportOptions) -> None:
        super().__init__(url, options)
        parts = urlsplit(url)
        if self.scheme == "http":
            self.default_port = 80
            self.port = parts.port or 80
            if not options.allow_http:
                raise TransportError(
                    f"{self.where(self.path)}: http: sends data and passwords unencrypted; use "
                    "https:, or set allow_http if this network is trusted"
                )
        if options.done_marker is not None:
            raise TransportError(
                f"{self.where(self.path)}: done markers need a folder listing, which {self.scheme}"
                " does not have; remove the done_marker setting"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._netloc = f"{host}:{parts.port}" if parts.port else host
        self._encoded_path = parts.path or "/"
        self._query = parts.query
        self._base = self._url(self._encoded_path)
        # Passed on every request: a session-level verify loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = str(options.ca_bundle) if options.ca_bundle else True
        self._session: requests.Session | None = None

    def _url(self, encoded_path: str) -> str:
        """The URL requests gets: no user or password in it (they go in headers)."""
        return urlunsplit((self.scheme, self._netloc, encoded_path, self._query, ""))

    def _session_for(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            if self.username:
                session.auth = (self.username, self._password or "")
            header = self._auth_header
            if header:
                named = HEADER_FORM.match(header)
                name, value = named.groups() if named else ("Authorization", header)
                session.headers[name] = value
            self._session = session
        return self._session

    def _reset(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _transient(self, exc: BaseException) -> bool:
        if isinstance(exc, HttpStatus):
            return exc.status >= 500 or exc.status in TRANSIENT_STATUS
        if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.InvalidURL):
            return False
        return isinstance(exc, requests.ConnectionError | requests.Timeout
                          | requests.exceptions.ChunkedEncodingError)

    def _explain(self, exc: BaseException) -> str:
        """For requests' wrappers, the innermost cause (a refused connection, a certificate
        error), not urllib3's retry summary."""
        if isinstance(exc, HttpStatus):
            return str(exc)
        if not isinstance(exc, requests.RequestException):
            return explain(exc)
        root: BaseException = exc
        while (inner := root.__cause__ or root.__context__) is not None:
            root = inner
        return explain(root)

    def _hint(self, exc: BaseException) -> str:
        if isinstance(exc, requests.exceptions.SSLError):
            return ("the server's certificate is not trusted: set ca_bundle to the CA file that "
                    "signed it (or fix the host name in the URL)")
        if isinstance(exc, HttpStatus):
            if exc.status in (401, 403):
                return "check the username, password or auth header (or the variable behind it)"
            if exc.status == 404:
                return "check the URL"
            if 300 <= exc.status < 400:
                return f"the server redirects to {exc.location}; put that URL in the setting"
            if exc.status >= 500:
                return "the server kept failing; the next run will try again"
            return "the server refused the request; see its answer above"
        return "check that the server is reachable; the next run will try again"

    def _check(self, response: requests.Response) -> None:
        if 200 <= response.status_code < 300:
            if response.url and urlsplit(response.url).scheme != self.scheme:
                raise TransportError(
                    f"{self.where(self.path)}: the server redirected to "
                    f"{urlsplit(response.url).scheme}:, refused; use the final URL"
                )
            return
        try:
            raw = response.raw.read(4 * QUOTED, decode_content=True)
        except (OSError, requests.RequestException, ValueError):
            raw = b""
        body = raw.decode(response.encoding or "utf-8", "replace").strip()[:QUOTED]
        raise HttpStatus(response.status_code, response.reason or "", body,
                         response.headers.get("Location"))

    # In this class body ``list`` names this method, so signatures spell ``builtins.list``.
    def list(self) -> builtins.list[RemoteFile]:
        """The one document the URL names, with its size and time when the server tells them;
        ``[]`` when the server says 404 or 410."""
        if self.mode != "file":
            raise TransportError(
                f"{self.where(self.path)}: an {self.scheme} URL names one document; folders and "
                "globs need file:, ftp: or sftp:"
            )

        def head() -> list[RemoteFile]:
            response = self._session_for().head(
                self._base, timeout=self.options.timeout, allow_redirects=True,
                verify=self._verify,
                headers={"Accept-Encoding": "identity"},
            )
            with response:
                if response.status_code in (404, 410):
                    return []
                if response.status_code in (405, 501):
                    return [RemoteFile(self.target or "", self.path, None, None)]
                self._check(response)
                length = response.headers.get("Content-Length")
                return [RemoteFile(self.target or "", self.path,
                                   int(length) if length and length.isdigit() else None,
                                   _http_time(response.headers.get("Last-Modified")))]

        return self._retry("list", self.path, head)

    def ready(
        self, files: Sequence[RemoteFile]
    ) -> tuple[builtins.list[RemoteFile], builtins.list[RemoteFile]]:
        """Every document is ready: a server sends whole responses."""
        return list(files), []

    def _download(self, file: RemoteFile, sink: Callable[[bytes], None]) -> None:
        response = self._session_for().get(
            self._base, stream=True, timeout=self.options.timeout, verify=self._verify,
            headers={"Accept-Encoding": "identity"},
        )
        with response:
            self._check(response)
            for chunk in response.iter_content(CHUNK):
                sink(chunk)

    def _upload(self, source: HashingReader, folder: str, name: str) -> None:
        """POST the file (to the URL, or the URL plus ``name`` for a folder URL): 2xx is
        success, other 4xx an error quoting the answer, 5xx and timeouts are retried."""
        url = self._base
        if self.mode == "directory":
            url = self._url(self._encoded_path + quote(name))
        response = self._session_for().post(
            url, data=source, timeout=self.options.timeout, allow_redirects=False,
            stream=True, verify=self._verify, headers={"Content-Type": self.options.content_type},
        )
        with response:
            self._check(response)


def _http_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
