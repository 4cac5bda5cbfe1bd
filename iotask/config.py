"""Where the database is and which time zone schedules use.

Resolution order for the database URL: ``--db URL``, then ``IOTASK_DATABASE_URL``, then the INI
file (``IOTASK_CONFIG``, else the first of ``./iotask.ini``, the user's
``~/.config/iotask/iotask.ini`` and ``/etc/iotask/iotask.ini``; section ``[iotask]``, key
``database_url``; a relative SQLite path there is taken from the file's folder), then
``sqlite:///iotask.db`` in the current folder. Rejected rows are written to ``IOTASK_REJECT_DIR``
(INI ``reject_dir``), by default a ``rejects`` folder beside the SQLite database (else in the
current folder). ``file:`` URLs must lie in ``IOTASK_FILE_ROOTS`` (INI ``file_roots``; folders
separated by ``:``), by default an ``iofiles`` folder in that same place. The run-due URL of
``iotask serve`` needs ``IOTASK_RUN_TOKEN`` (INI ``run_token``); ``IOTASK_RUN_URL_ALLOW_GET``
(INI ``run_url_allow_get``) lets it answer GET too, for wget lines. The LMS database the task
types (``iotask task add --type``) write into or read from is ``--lms URL``, else
``IOTASK_LMS_DATABASE_URL`` (INI ``lms_database_url``), else the iotask database.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iotask.connectors import masking
from iotask.errors import IotaskError

DEFAULT_DATABASE_URL = "sqlite:///iotask.db"


DEFAULT_LEASE_SECONDS = 300
MAX_LEASE_SECONDS = 86_400  # a runner silent a whole day is dead


SMTP_SECURITY = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class Smtp:
    """The mail server notifications go through (IOTASK_SMTP_* or smtp_* in the INI file)."""

    host: str
    port: int
    security: str = "none"  # none, starttls or ssl
    user: str | None = None
    password: str | None = None  # or env:VARIABLE, read when a message is sent
    sender: str = "iotask@localhost"
    timeout: float = 10.0
    ca_bundle: Path | None = None  # a private CA for starttls/ssl


@dataclass(frozen=True)
class Config:
    database_url: str
    timezone: ZoneInfo
    source: str  # where database_url came from, for messages
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    log: str = "stderr"  # stderr, syslog, or a file path
    log_level: str | None = None  # None: INFO for a file or syslog, WARNING on stderr unless -v
    reject_dir: Path = Path("rejects")  # where runs write their rejected rows
    file_roots: tuple[Path, ...] = (Path("iofiles"),)  # where file: URLs may point
    config_file: str | None = None  # the INI file read, if any
    smtp: Smtp | None = None  # None: no mail server configured, nothing is sent
    base_url: str | None = None  # the console's address, for links in messages
    run_token: str | None = field(default=None, repr=False)  # the run-due URL's; None: off
    run_url_allow_get: bool = False  # GET as well as POST on the run-due URL (wget lines)
    lms_database_url: str | None = field(default=None, repr=False)  # None: the iotask database


def data_folder(url: str) -> Path:
    """The folder iotask keeps its files in: the SQLite database's, else the current one."""
    if url.startswith("sqlite:///") and url not in ("sqlite:///", "sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///")).expanduser().parent
    return Path(".")


def config_files() -> list[Path]:
    """Where an INI file is looked for, first found wins: so cron, running from $HOME, finds
    the same configuration as a person in the iotask folder."""
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path("iotask.ini"), user / "iotask" / "iotask.ini", Path("/etc/iotask/iotask.ini")]


def _ini_values() -> tuple[dict[str, str], str | None]:
    path = os.environ.get("IOTASK_CONFIG")
    if path is not None:
        ini = Path(path)
        if not ini.exists():
            raise IotaskError(
                f"IOTASK_CONFIG names {ini}, which does not exist: create it or unset IOTASK_CONFIG"
            )
    else:
        found = [candidate for candidate in config_files() if candidate.is_file()]
        if not found:
            return {}, None
        ini = found[0].absolute()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise IotaskError(f"cannot read config file {ini}: {first_line}") from None
    except UnicodeDecodeError as exc:
        raise IotaskError(f"cannot read config file {ini}: byte {exc.start} is not UTF-8; save "
                          "it as UTF-8") from None
    except OSError as exc:
        raise IotaskError(f"cannot read config file {ini}: {exc.strerror}") from None
    if not parser.has_section("iotask"):
        raise IotaskError(f"config file {ini} has no [iotask] section: add one with database_url")
    return dict(parser.items("iotask")), str(ini)


def machine_timezone() -> ZoneInfo:
    """The machine's IANA zone as tzlocal finds it (TZ, /etc/timezone, /etc/localtime, systemd);
    UTC when it cannot tell, or when the machine's settings disagree."""
    from tzlocal import get_localzone_name  # only when no zone is configured

    try:
        name = get_localzone_name()
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def _smtp(ini: dict[str, str], ini_path: str | None) -> Smtp | None:
    """The SMTP settings: IOTASK_SMTP_HOST and its siblings, else smtp_host ... in the INI."""
    def value(key: str) -> str | None:
        return os.environ.get(f"IOTASK_SMTP_{key.upper()}") or ini.get(f"smtp_{key}") or None

    host = value("host")
    if host is None:
        return None
    security = (value("security") or "none").lower()
    if security not in SMTP_SECURITY:
        raise IotaskError(f"smtp_security {security!r} is not one of {', '.join(SMTP_SECURITY)}")
    default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    numbers: dict[str, float] = {}
    for key, default, most in (("port", default_port, 65535), ("timeout", 10, 300)):
        text = value(key)
        try:
            numbers[key] = float(text) if text is not None else default
        except ValueError:
            numbers[key] = -1
        if not 1 <= numbers[key] <= most or (key == "port" and numbers[key] % 1):
            where = ini_path or "the INI file"
            raise IotaskError(f"smtp_{key} must be a number from 1 to {most}, got {text!r} "
                              f"(IOTASK_SMTP_{key.upper()} or smtp_{key} in {where})")
    ca = value("ca_bundle")
    return Smtp(host=host, port=int(numbers["port"]), security=security, user=value("user"),
                password=value("password"), sender=value("from") or "iotask@localhost",
                timeout=numbers["timeout"], ca_bundle=Path(ca) if ca else None)


def _beside(url: str, ini_path: str | None) -> str:
    """A relative SQLite path in an INI file of another folder (the user's, /etc/iotask), taken
    from that file's folder: cron, running from $HOME, opens the same database."""
    path = url.removeprefix("sqlite:///")
    if ini_path is None or not url.startswith("sqlite:///") or not path or path == ":memory:" \
            or Path(path).expanduser().is_absolute():
        return url
    folder = Path(ini_path).parent
    if folder.resolve() == Path.cwd().resolve():
        return url
    return f"sqlite:///{folder.absolute() / path}"


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def _flag(text: str | None, name: str) -> bool:
    """A yes/no setting as people write it in an INI file or the environment."""
    word = (text or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise IotaskError(f"{name} must be one of {', '.join(TRUE_WORDS)} or "
                      f"{', '.join(w for w in FALSE_WORDS if w)}, got {text!r} "
                      f"(IOTASK_{name.upper()} or {name} in the INI file)")


def parse_timezone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise IotaskError(
            f"unknown time zone {name!r} in {where}: use an IANA name such as Europe/Rome or UTC"
        ) from None


def load(db_option: str | None = None) -> Config:
    """Resolve the configuration from the option, the environment and the INI file."""
    ini, ini_path = _ini_values()
    if db_option:
        url, source = db_option, "--db"
    elif os.environ.get("IOTASK_DATABASE_URL"):
        url, source = os.environ["IOTASK_DATABASE_URL"], "IOTASK_DATABASE_URL"
    elif ini.get("database_url"):
        url, source = _beside(ini["database_url"], ini_path), f"{ini_path} database_url"
    else:
        url, source = DEFAULT_DATABASE_URL, "the default"
    if os.environ.get("IOTASK_TIMEZONE"):
        tz = parse_timezone(os.environ["IOTASK_TIMEZONE"], "IOTASK_TIMEZONE")
    elif ini.get("timezone"):
        tz = parse_timezone(ini["timezone"], f"{ini_path} timezone")
    else:
        tz = machine_timezone()
    lease_text = os.environ.get("IOTASK_LEASE_SECONDS") or ini.get("lease_seconds")
    lease = DEFAULT_LEASE_SECONDS
    if lease_text:
        try:
            lease = int(lease_text)
        except ValueError:
            lease = 0
        if not 1 <= lease <= MAX_LEASE_SECONDS:
            raise IotaskError(
                f"lease seconds must be a whole number of seconds from 1 to "
                f"{MAX_LEASE_SECONDS:,}, got {lease_text!r} "
                "(IOTASK_LEASE_SECONDS or lease_seconds in the INI file)"
            )
    log = os.environ.get("IOTASK_LOG") or ini.get("log") or "stderr"
    level = os.environ.get("IOTASK_LOG_LEVEL") or ini.get("log_level")
    if level and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise IotaskError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    rejects_text = os.environ.get("IOTASK_REJECT_DIR") or ini.get("reject_dir")
    rejects = Path(rejects_text) if rejects_text else data_folder(url) / "rejects"
    roots_text = os.environ.get("IOTASK_FILE_ROOTS") or ini.get("file_roots")
    roots = tuple(Path(part).expanduser() for part in (roots_text or "").split(os.pathsep)
                  if part.strip()) or (data_folder(url) / "iofiles",)
    smtp = _smtp(ini, ini_path)
    base_url = os.environ.get("IOTASK_BASE_URL") or ini.get("base_url") or None
    run_token = (os.environ.get("IOTASK_RUN_TOKEN") or ini.get("run_token") or "").strip()
    masking.remember(run_token)  # never in any output or log line
    lms_url = os.environ.get("IOTASK_LMS_DATABASE_URL") or (
        _beside(ini["lms_database_url"], ini_path) if ini.get("lms_database_url") else None)
    allow_get = _flag(os.environ.get("IOTASK_RUN_URL_ALLOW_GET")
                      or ini.get("run_url_allow_get"), "run_url_allow_get")
    return Config(database_url=url, timezone=tz, source=source, lease_seconds=lease, log=log,
                  smtp=smtp, base_url=base_url.rstrip("/") if base_url else None,
                  log_level=level.upper() if level else None,
                  reject_dir=rejects.absolute(),
                  file_roots=tuple(root.absolute() for root in roots), config_file=ini_path,
                  run_token=run_token or None, run_url_allow_get=allow_get,
                  lms_database_url=lms_url or None)
