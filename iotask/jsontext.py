"""JSON a person typed (--map, --params-json) or a DBA stored (core_task.map, params): read with
one clear error for bad text, absurd nesting included, never a traceback."""

from __future__ import annotations

import json
from typing import Any

from iotask.errors import IotaskError


def loads(text: str, what: str, hint: str = "",
          error: type[IotaskError] = IotaskError) -> Any:
    """``text`` parsed; ``what`` names it in the error, ``hint`` says how to fix it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                    f"{exc.colno}{hint}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read{hint}") from None
