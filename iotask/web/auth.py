"""Signing in to the console: the login page, who is signed in, roles, CSRF tokens, and
failed logins slowed down (never locked out for good).

The session is Flask's signed cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) holding the
user's name, a fingerprint of their password hash (a new password ends older sessions) and the
CSRF token every form posts back.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.orm import Session

from iotask import db, users
from iotask.web.state import console

log = logging.getLogger("iotask.web.auth")

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])

FREE_FAILURES = 3  # failed logins in a row before each next attempt must wait
FIRST_DELAY = 0.5  # seconds, doubling with each further failure
MAX_DELAY = 4.0  # the longest wait: slowed, never locked out
FORGET_AFTER = 900.0  # seconds of quiet after which a name's or address's failures are forgotten
MAX_TRACKED = 10_000


class SecureWhenHttps(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS (directly, or through
    a trusted proxy's X-Forwarded-Proto), so it never travels back over plain HTTP; and its
    path is the console's."""

    def get_cookie_secure(self, app: Any) -> bool:
        return bool(request.is_secure) or super().get_cookie_secure(app)

    def get_cookie_path(self, app: Any) -> str:
        """Under a base path (/iotask), the cookie goes to that path only, not to every
        application on the host."""
        return request.script_root or super().get_cookie_path(app)


@dataclass
class Failures:
    count: int
    last: float


class Throttle:
    """Failed logins per user name and per client address: after a few in a row, each next
    attempt waits (0.5 s, doubling, at most 4 s). One process's memory: enough to make guessing
    slow, and a wait that always ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, Failures] = {}

    @staticmethod
    def delay(count: int) -> float:
        if count < FREE_FAILURES:
            return 0.0
        return min(FIRST_DELAY * 2 ** (count - FREE_FAILURES), MAX_DELAY)

    def wait(self, keys: list[str]) -> float:
        """Seconds before these keys may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [failures.last + self.delay(failures.count) - now
                     for key in keys if (failures := self._seen.get(key)) is not None]
        return max([0.0, *waits])

    def failed(self, keys: list[str]) -> int:
        """Count a failure for each key; the highest count in a row."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > MAX_TRACKED:
                self._seen = {k: f for k, f in self._seen.items()
                              if now - f.last < FORGET_AFTER}
            for key in keys:
                failures = self._seen.get(key)
                if failures is None or now - failures.last > FORGET_AFTER:
                    failures = self._seen[key] = Failures(0, now)
                failures.count += 1
                failures.last = now
            return max(self._seen[key].count for key in keys)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)


def throttle() -> Throttle:
    """This app's failed-login memory (one per app, made by ``create_app``)."""
    found: Throttle = current_app.extensions["iotask.throttle"]
    return found


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Every POST of the console carries this session's token, or changes nothing (403)."""
    expected = session.get("csrf")
    given = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(),
                                                                 expected.encode()):
        log.warning("console: %s %s refused: missing or wrong CSRF token (from %s)",
                    request.method, request.path, request.remote_addr)
        abort(403, "the form's security token is missing or out of date: reload the page "
                   "and try again")


@dataclass(frozen=True)
class SignedIn:
    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def load_user() -> None:
    """Who is signed in (``g.user``), checked against the database on every request: a
    removed user or a changed password ends the session at once."""
    g.user = None
    name, mark = session.get("user"), session.get("fp")
    if not isinstance(name, str) or not isinstance(mark, str):
        return
    with Session(db.reader(console().engine)) as dbs:
        row = dbs.get(users.ConsoleUser, name)
        if row is None or not hmac.compare_digest(users.fingerprint(row), mark):
            session.pop("user", None)
            session.pop("fp", None)
            return
        g.user = SignedIn(row.name, row.role)


def current_user() -> SignedIn:
    user: SignedIn = g.user
    return user


def admin_required(view: F) -> F:
    """A route that changes something: admins only, viewers get 403."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None or not g.user.admin:
            log.warning("console: %s %s refused: user %s is not an admin", request.method,
                        request.path, g.user.name if g.get("user") else "(none)")
            abort(403, "viewers see everything and change nothing: ask an admin")
        return view(*args, **kwargs)
    return cast(F, wrapper)


def _keys(name: str) -> list[str]:
    return [f"user:{name}", f"ip:{request.remote_addr}"]


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", name="", error=None)
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    keys = _keys(name)
    wait = throttle().wait(keys)
    if wait > 0:
        seconds = max(1, round(wait + 0.49))
        page = render_template("login.html", name=name, error=(
            f"too many failed sign-ins: try again in {seconds} s"))
        return page, 429, {"Retry-After": str(seconds)}
    with Session(db.reader(console().engine)) as dbs:
        row = users.verify(dbs, name, password)
        found = None if row is None else (row.name, users.fingerprint(row))
    if found is None:
        count = throttle().failed(keys)
        log.warning("console: failed sign-in as %r from %s (%d in a row; next try in %.1f s)",
                    name[:60], request.remote_addr, count, Throttle.delay(count))
        return render_template("login.html", name=name,
                               error="wrong user name or password"), 401
    throttle().succeeded(keys)
    session.clear()
    session.permanent = True
    session["user"], session["fp"] = found
    csrf_token()
    log.info("console: %s signed in from %s", name, request.remote_addr)
    target = request.args.get("next", "")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = url_for("pages.task_list")
    return redirect(target)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
