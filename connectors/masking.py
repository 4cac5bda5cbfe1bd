"""One masking function for every output path: the CLI's stdout and stderr, logs, stored run
errors and reports. It hides every secret value this process has seen configured (passwords,
auth headers, tokens, whatever their length), the credentials inside URLs (malformed ones
included) and secrets in URL query strings.

Secrets are remembered when a connector is built from its settings and when a transport reads
one from the environment, so a server or driver that echoes a password back is masked too.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

MASK = "********"
URL_MASK = "***"

# scheme://user:password@host — also without the scheme's colon (mysql+pymysql//root:pw@h) and
# with a / or a second @ inside the password: everything up to the last @ before a delimiter
_USERINFO = re.compile(r"(//[^/\s:@\"'<>]*:)[^\s\"'<>]*@")
_QUERY = re.compile(r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|access_token|"
                    r"api_key|apikey|auth)=)[^&\s\"'#<>]*")
_SHORT = 4  # shorter secrets are masked as whole tokens only (between spaces, quotes, = or :)

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def remember(value: object) -> None:
    """Mask ``value`` wherever it appears from now on, with its URL-quoted and Basic-auth forms
    when it looks like one."""
    global _pattern
    if not isinstance(value, str) or not value.strip():
        return
    forms = {value, value.strip(), unquote(value)}
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() in ("bearer", "basic", "token"):
        forms.add(token.strip())
    if not forms <= _known:
        _known.update(form for form in forms if form)
        _pattern = None


def forget() -> None:
    """Forget every remembered secret: for a process that serves one command after another."""
    global _pattern
    _known.clear()
    _pattern = None


def remember_basic(user: str | None, password: str | None) -> None:
    """A user and password as HTTP Basic auth sends them (base64 of user:password)."""
    if user is not None and password:
        remember(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))


def remember_url(url: object) -> None:
    """The password inside a URL and the secrets in its query string."""
    if not isinstance(url, str):
        return
    for found in _USERINFO.finditer(url):
        remember(found.group(0)[len(found.group(1)):-1])
    for found in _QUERY.finditer(url):
        remember(url[found.end(1):found.end()])


def _secrets_pattern() -> re.Pattern[str] | None:
    global _pattern
    if _pattern is None and _known:
        parts = []
        for secret in sorted(_known, key=len, reverse=True):
            escaped = re.escape(secret)
            parts.append(escaped if len(secret) >= _SHORT
                         else rf"(?<![^\s'\"=:,;(\[{{]){escaped}(?![^\s'\"),;\]}}])")
        _pattern = re.compile("|".join(parts))
    return _pattern


def mask_url(text: str) -> str:
    """Credentials in URLs hidden: ``ftp://bob:***@host``, ``?password=***``."""
    text = _USERINFO.sub(lambda m: m.group(1) + URL_MASK + "@", text)
    return _QUERY.sub(lambda m: m.group(1) + URL_MASK, text)


def mask(text: str) -> str:
    """``text`` as it may be shown or stored: URL credentials and every known secret hidden."""
    if not text:
        return text
    text = mask_url(text)
    pattern = _secrets_pattern()
    return pattern.sub(MASK, text) if pattern is not None else text
