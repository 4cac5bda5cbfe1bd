"""Any SQL table (or query) on any SQLAlchemy URL: read and write."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, Setting, SettingsError


class SqlConnector(Connector):
    type_name = "sql"
    description = "A table or query in any SQL database SQLAlchemy can reach"
    can_read = True
    can_write = True
    settings = (
        Setting("database", "url",
                help="SQLAlchemy URL of the database; default: the iotask database"),
        Setting("table", help="table to read or write"),
        Setting("query", help="SELECT to read from (source only), instead of a table"),
        Setting("key", "list", help="key columns that identify a record"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        if not params.get("table") and not params.get("query"):
            raise SettingsError(
                "connector type 'sql' needs setting 'table' (or 'query' for a source), "
                "e.g. --set table=lms_user"
            )


CONNECTOR = SqlConnector
