"""The column map of a task: which destination column gets which source column or constant.

Three forms, stored as JSON in ``core_task.map``:

* Docebo's positional list, one entry per source column in order:
  ``[{"map": "userid", "pk": "1"}, {"map": "ignorefield"}, ...]`` (``pk`` marks key columns);
* the named form: ``{"columns": {"dest_col": "source header" | {"const": value} |
  {"optional": "source header"}}, "key": ["dest_col", ...]}``; an optional column may be
  missing from the source, and the destination column is then left out (the task types' maps:
  a file may leave out its optional columns);
* no map: every source column goes to the destination column of the same name.

The map is checked against both endpoints' columns when the task is saved (as far as they can be
known then) and again when it runs, so a mistake is named before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import repeat
from operator import eq, methodcaller
from typing import Any

from iotask import jsontext
from iotask.connectors.context import Column, Row
from iotask.errors import MapError

IGNORE = "ignorefield"
LINE = "__line__"
_KEYS = methodcaller("keys")


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class OptionalColumn:
    """A source column the source may not have (then its destination column is left out)."""

    column: str


Source = str | Const | OptionalColumn  # what a destination column takes


@dataclass
class Mapping:
    """A map resolved against the source's columns: ready to turn source rows into rows."""

    pairs: list[tuple[str, Source]] | None  # None: identity, rows pass unchanged
    key: list[str]

    def apply(self, row: Row) -> Row:
        if self.pairs is None:
            return row
        out = {dest: source.value if isinstance(source, Const) else
               row.get(source.column if isinstance(source, OptionalColumn) else source)
               for dest, source in self.pairs}
        if LINE in row:
            out[LINE] = row[LINE]
        return out

    def apply_batch(self, batch: list[Row]) -> list[Row]:
        """Map a batch; rows whose columns the map keeps as they are pass unchanged (fast)."""
        if self.pairs is None:
            return batch
        if all(dest == source for dest, source in self.pairs):
            same = {dest for dest, _ in self.pairs}
            shapes = list(map(_KEYS, batch))  # compared in C loops: this runs for every row
            if all(map(eq, shapes, repeat(same | {LINE}))) or all(map(eq, shapes, repeat(same))):
                return batch
        return [self.apply(row) for row in batch]

    @property
    def destination_columns(self) -> list[str] | None:
        return None if self.pairs is None else [dest for dest, _ in self.pairs]


def _load(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    return jsontext.loads(text, "map", error=MapError)


def _positional(entries: list[Any], source: list[str] | None) -> Mapping:
    if source is not None and len(entries) > len(source):
        raise MapError(f"map has {len(entries)} entries but the source has {len(source)} "
                       f"columns ({', '.join(source)})")
    pairs: list[tuple[str, Source]] = []
    key = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("map"), str):
            raise MapError(f'map entry {index + 1} must be {{"map": "<destination column>"}} '
                           f'or {{"map": "{IGNORE}"}}, got {json.dumps(entry)}')
        dest = entry["map"]
        if dest == IGNORE:
            continue
        pairs.append((dest, source[index] if source is not None else f"#{index + 1}"))
        if str(entry.get("pk", "")).strip() in ("1", "true", "True"):
            key.append(dest)
    return Mapping(pairs, key)


def _named(spec: dict[str, Any]) -> Mapping:
    unknown = sorted(set(spec) - {"columns", "key"})
    if unknown:
        raise MapError(f"map has unknown entry {unknown[0]!r}: expected \"columns\" and \"key\"")
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise MapError('map "columns" must be an object of "destination column": '
                       '"source column" or {"const": value}')
    pairs: list[tuple[str, Source]] = []
    for dest, source in columns.items():
        if isinstance(source, str):
            pairs.append((dest, source))
        elif isinstance(source, dict) and set(source) == {"const"}:
            pairs.append((dest, Const(source["const"])))
        elif isinstance(source, dict) and set(source) == {"optional"} \
                and isinstance(source["optional"], str):
            pairs.append((dest, OptionalColumn(source["optional"])))
        else:
            raise MapError(f"map column {dest!r}: expected a source column name, "
                           f'{{"const": value}} or {{"optional": "source column"}}, got '
                           f"{json.dumps(source)}")
    key = spec.get("key", [])
    if not isinstance(key, list) or not all(isinstance(k, str) for k in key):
        raise MapError('map "key" must be a list of destination column names')
    for name in key:
        if name not in columns:
            raise MapError(f"map key {name!r} is not one of the mapped columns")
    return Mapping(pairs, key)


def resolve(text: str | None, source: list[Column] | None, destination: list[Column] | None,
            import_type: str) -> Mapping:
    """Check the map against the columns known now and return it ready to apply.

    ``source``/``destination`` None means those columns cannot be known yet (no file yet, a
    target that takes any column): the checks that need them wait for the run.
    """
    source_names = None if source is None else [c.name for c in source if not c.refused]
    spec = _load(text)
    if spec is None:
        mapping = Mapping(None if source_names is None else [(n, n) for n in source_names], [])
    elif isinstance(spec, list):
        mapping = _positional(spec, source_names)
    elif isinstance(spec, dict):
        mapping = _named(spec)
    else:
        raise MapError('map must be a JSON list ([{"map": "userid", "pk": "1"}, ...]) or '
                       'object ({"columns": {...}, "key": [...]})')
    if source_names is not None and isinstance(spec, dict):
        mapping.pairs = [(dest, source) for dest, source in mapping.pairs or []
                         if not isinstance(source, OptionalColumn) or source.column in source_names]
        for dest, from_column in mapping.pairs:
            if isinstance(from_column, str) and from_column not in source_names:
                raise MapError(f"map column {dest!r} takes source column {from_column!r}, "
                               f"which the source does not have ({', '.join(source_names)})")
    targets = mapping.destination_columns
    if destination is not None:
        refused = {c.name: c.refused for c in destination if c.refused}
        destination = [c for c in destination if not c.refused]
        known = {c.name for c in destination}
        if targets is not None:
            for name in targets:
                if name in refused:
                    raise MapError(f"destination column {name!r} is not taken: {refused[name]}")
                if name not in known:
                    hint = next((f": is the source's delimiter {sep!r}?" for sep in ";\t|,"
                                 if sep in name), "")
                    raise MapError(f"destination has no column {name!r} (it has: "
                                   f"{', '.join(c.name for c in destination)}){hint}")
            missing = [c.name for c in destination if c.required and c.name not in targets]
            if missing:
                raise MapError(f"destination column {missing[0]!r} needs a value but the map "
                               "gives it none: map a source column or a constant to it")
    key = mapping.key or ([c.name for c in destination if c.key] if destination else [])
    if import_type == "sync" and destination is not None and not key:
        raise MapError('a sync task needs key columns to match records: mark them with '
                       '"pk": "1" in the map, list them under "key", or set the '
                       "destination's key")
    return mapping
