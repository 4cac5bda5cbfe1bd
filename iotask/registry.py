"""The connector registry: core_connector rows to classes, through Python's import system only."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from iotask.connectors.base import Connector
from iotask.connectors.settings import KINDS, Setting
from iotask.errors import ConnectorLoadError, IotaskError, NotFound
from iotask.models import Connector as ConnectorRow

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,24}$")


@dataclass
class ConnectorInfo:
    """One registered connector, as ``iotask connector list`` shows it."""

    type_name: str
    module: str
    class_name: str
    cls: type[Connector] | None
    error: str | None = None


def _import(module: str) -> object:
    if not MODULE_NAME.match(module):
        raise ConnectorLoadError(
            f"{module!r} is not a Python module name: give a dotted import path such as "
            "mypackage.myconnector"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConnectorLoadError(f"cannot import module {module!r}: {exc}") from None
    except Exception as exc:  # a third-party module that fails while importing
        raise ConnectorLoadError(
            f"module {module!r} failed while importing: {type(exc).__name__}: {exc}"
        ) from None


def load_class(row: ConnectorRow) -> type[Connector]:
    """The connector class a core_connector row names."""
    module = _import(row.file)
    if not CLASS_NAME.match(row.class_ or ""):
        raise ConnectorLoadError(f"connector {row.type!r}: {row.class_!r} is not a class name")
    cls = getattr(module, row.class_, None)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConnectorLoadError(
            f"connector {row.type!r}: module {row.file!r} has no connector class {row.class_!r}"
        )
    return cls


def get_row(session: Session, type_name: str) -> ConnectorRow:
    row = session.get(ConnectorRow, type_name)
    if row is None:
        known = ", ".join(session.scalars(select(ConnectorRow.type).order_by(ConnectorRow.type)))
        raise NotFound(f"no connector type {type_name!r} (registered: {known or 'none'})")
    return row


def connector_class(session: Session, type_name: str) -> type[Connector]:
    """The class registered for ``type_name``; a clear error when it cannot be loaded."""
    row = get_row(session, type_name)
    try:
        return load_class(row)
    except ConnectorLoadError as exc:
        raise ConnectorLoadError(f"connector type {type_name!r} is unusable: {exc}") from None


def list_connectors(session: Session) -> list[ConnectorInfo]:
    """Every registered connector; one that fails to load is listed with its error."""
    infos = []
    for row in session.scalars(select(ConnectorRow).order_by(ConnectorRow.type)):
        try:
            infos.append(ConnectorInfo(row.type, row.file, row.class_, load_class(row)))
        except ConnectorLoadError as exc:
            infos.append(ConnectorInfo(row.type, row.file, row.class_, None, str(exc)))
    return infos


def _declared_class(module_name: str) -> type[Connector]:
    module = _import(module_name)
    declared = getattr(module, "CONNECTOR", None)
    if not (isinstance(declared, type) and issubclass(declared, Connector)):
        raise IotaskError(
            f"module {module_name!r} declares no connector: it must set CONNECTOR = <a subclass "
            "of iotask.connectors.base.Connector>"
        )
    cls: type[Connector] = declared
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not TYPE_NAME.match(type_name):
        raise IotaskError(
            f"module {module_name!r}: {cls.__name__}.type_name must be 1-25 lower-case letters, "
            f"digits, '-' or '_' starting with a letter, got {type_name!r}"
        )
    if getattr(module, cls.__name__, None) is not cls:
        raise IotaskError(
            f"module {module_name!r}: class {cls.__name__} must be defined in the module itself"
        )
    if not (cls.can_read or cls.can_write):
        raise IotaskError(f"module {module_name!r}: {cls.__name__} neither reads nor writes")
    settings = cls.settings
    if not all(isinstance(s, Setting) and s.kind in KINDS for s in settings):
        raise IotaskError(
            f"module {module_name!r}: {cls.__name__}.settings must be a tuple of "
            "iotask.connectors.settings.Setting"
        )
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise IotaskError(f"module {module_name!r}: {cls.__name__} declares a setting twice")
    return cls


def register(session: Session, module_name: str) -> ConnectorRow:
    """Register a connector module (third-party or built-in) under the type it declares."""
    cls = _declared_class(module_name)
    existing = session.get(ConnectorRow, cls.type_name)
    if existing is not None:
        raise IotaskError(
            f"connector type {cls.type_name!r} is already registered (module {existing.file}, "
            f"class {existing.class_}): choose another type_name"
        )
    row = ConnectorRow(type=cls.type_name, file=module_name, class_=cls.__name__)
    session.add(row)
    return row
