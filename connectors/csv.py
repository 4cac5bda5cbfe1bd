"""CSV files: read and write (the engine's reading and writing land with the import engine)."""

from __future__ import annotations

from typing import Any

from connectors.base import Connector, Setting, SettingsError

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")


class CsvConnector(Connector):
    type_name = "csv"
    description = "CSV file (delimited text), read or written"
    can_read = True
    can_write = True
    settings = (
        Setting("url", "url", required=True,
                help="file path or file: URL, e.g. /srv/hr/users.csv"),
        Setting("delimiter", default=",", help="one character separating fields"),
        Setting("quotechar", default='"', help="one character enclosing fields"),
        Setting("encoding", default="utf-8", choices=ENCODINGS,
                help="utf-8-sig for UTF-8 with a byte-order mark"),
        Setting("header", "bool", default=True, help="the first line names the columns"),
        Setting("columns", "list", help="column names when the file has no header line"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        for key in ("delimiter", "quotechar"):
            if len(params[key]) != 1:
                raise SettingsError(f"setting {key!r} must be exactly one character")
        if not params["header"] and not params.get("columns"):
            raise SettingsError(
                "setting 'columns' is required when 'header' is false: name the columns, "
                "e.g. --set columns=userid,firstname,lastname"
            )


CONNECTOR = CsvConnector
