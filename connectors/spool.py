"""Rows of several kinds put back in a fixed order of kinds with flat memory: the rows that
must wait for other kinds go to temporary files (one JSON line per row) and come back in order.

The ims-enterprise source yields persons, then groups, then memberships whatever order the XML
has them in; the forma-lms destination applies users, then courses or org units, then
enrollments, whatever order its rows come in.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO

from iotask.connectors.context import Batch, Row

BATCH_SIZE = 1000


class Spool:
    """Temporary files of rows, one per kind, read back in the order the rows were put."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self._files: dict[str, IO[str]] = {}
        self.counts = dict.fromkeys(self.kinds, 0)

    def put(self, kind: str, row: Row) -> None:
        out = self._files.get(kind)
        if out is None:
            out = self._files[kind] = tempfile.TemporaryFile(
                "w+", encoding="utf-8", prefix="iotask-spool-")
        out.write(json.dumps(row, ensure_ascii=False, default=str))
        out.write("\n")
        self.counts[kind] += 1

    def batches(self, kind: str) -> Iterator[Batch]:
        """The rows put for ``kind``, in batches; the file is dropped once read."""
        spooled = self._files.pop(kind, None)
        if spooled is None:
            return
        with spooled:
            spooled.seek(0)
            batch: Batch = []
            for line in spooled:
                batch.append(json.loads(line))
                if len(batch) >= BATCH_SIZE:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def close(self) -> None:
        for spooled in self._files.values():
            spooled.close()
        self._files.clear()
