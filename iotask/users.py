"""Console users: who may sign in to the web console, as admin (changes things) or viewer
(reads only). Passwords are kept as argon2id hashes (argon2-cffi), never as text; the
session-signing key the console needs is generated here once and kept in the database.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iotask import clock, db
from iotask.errors import IotaskError, NotFound
from iotask.models import ConsoleSecret, ConsoleUser
from iotask.names import check_name

if TYPE_CHECKING:
    from argon2 import PasswordHasher

ROLES = ("admin", "viewer")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" is an attack on the CPU
SESSION_KEY = "session"


@cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's maintained defaults; made on first use, so that commands
    that never hash (cron's run-due) do not pay for it."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@cache
def _dummy() -> str:
    """A hash that no password matches, verified against for unknown names."""
    return _hasher().hash(secrets.token_urlsafe(16))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise IotaskError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """Refuse a password too short to resist guessing, or too long to hash cheaply."""
    if len(password) < MIN_PASSWORD:
        raise IotaskError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise IotaskError(f"the password must have at most {MAX_PASSWORD} characters")
    if password != password.strip("\r\n"):
        raise IotaskError("the password must not start or end with a line break")
    return password


def get(session: Session, name: str) -> ConsoleUser:
    row = session.get(ConsoleUser, name)
    if row is None:
        raise NotFound(f"no console user named {name!r}: see `iotask user list`")
    return row


def check_new(session: Session, name: str, role: str) -> None:
    """Refuse a user that cannot be added, before anyone is asked for a password."""
    check_name(name, "user")
    check_role(role)
    if session.get(ConsoleUser, name) is not None:
        raise IotaskError(f"console user {name!r} already exists: `iotask user passwd` changes "
                          "the password")


def add(session: Session, name: str, role: str, password: str) -> ConsoleUser:
    check_new(session, name, role)
    now = clock.utcnow()
    row = ConsoleUser(name=name, role=role,
                      password_hash=_hasher().hash(check_password(password)),
                      created_at=now, updated_at=now)
    session.add(row)
    return row


def set_password(session: Session, name: str, password: str) -> ConsoleUser:
    """A new password; the user's open console sessions end (their fingerprint changes)."""
    row = get(session, name)
    row.password_hash = _hasher().hash(check_password(password))
    row.updated_at = clock.utcnow()
    return row


def remove(session: Session, name: str) -> None:
    session.delete(get(session, name))


def list_all(session: Session) -> list[ConsoleUser]:
    return list(session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))


def verify(session: Session, name: str, password: str) -> ConsoleUser | None:
    """The user if the password is theirs, else None. An unknown name costs the same hashing
    as a known one, so answers do not tell which names exist."""
    row = session.get(ConsoleUser, name) if name and len(name) <= 255 else None
    if len(password) > MAX_PASSWORD:
        return None
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        _hasher().verify(row.password_hash if row is not None else _dummy(), password)
    except (VerificationError, InvalidHashError):
        return None
    return row


def fingerprint(row: ConsoleUser) -> str:
    """What a session remembers of the user's password hash: a changed password, or a user
    removed and added again, ends the sessions opened before."""
    return hashlib.sha256(row.password_hash.encode()).hexdigest()[:16]


def secret_key(engine: Engine, name: str = SESSION_KEY) -> str:
    """The console's session-signing key: generated on first use, then the same for every
    process on this database. Never printed."""
    def read() -> str | None:
        with Session(db.reader(engine)) as session:
            row = session.get(ConsoleSecret, name)
            return None if row is None else row.value

    found = read()
    if found is not None:
        return found
    try:
        with Session(engine) as session, session.begin():
            session.add(ConsoleSecret(name=name, value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another process made it at the same moment: use theirs
    found = read()
    if found is None:
        raise IotaskError("could not store the console's session key in the database")
    return found
