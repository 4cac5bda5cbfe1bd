"""A source for runner tests: numbered rows, optionally slow, failing, empty or with bad rows."""

from __future__ import annotations

import time
from pathlib import Path

from iotask.connectors.base import Connector
from iotask.connectors.context import RowError
from iotask.connectors.errors import NothingToProcess
from iotask.connectors.settings import Setting


class SampleSource(Connector):
    type_name = "test-source"
    description = "numbered rows for tests"
    can_read = True
    settings = (
        Setting("rows", "int", default=3),
        Setting("delay_ms", "int", default=0, help="sleep before each row"),
        Setting("fail", "bool", default=False, help="raise part way"),
        Setting("nothing", "bool", default=False, help="nothing to process"),
        Setting("bad_rows", "list", default=[], help="row numbers reported as rejected"),
        Setting("marker", help="file touched when half the rows are out"),
    )

    def read(self, context):
        if self.params["nothing"]:
            raise NothingToProcess("no new file")
        total = self.params["rows"]
        bad = {int(n) for n in self.params["bad_rows"]}
        for number in range(1, total + 1):
            time.sleep(self.params["delay_ms"] / 1000)
            if self.params["fail"] and number > total // 2:
                raise RuntimeError(f"source broke at row {number}")
            if number == total // 2 and self.params.get("marker"):
                Path(self.params["marker"]).touch()
            if number in bad:
                context.row_error(RowError(number, "bad value", key_values=str(number),
                                           column="seq"))
                continue
            yield [{"seq": number}]


CONNECTOR = SampleSource
