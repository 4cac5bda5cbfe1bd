"""The settings a connector declares: kinds, defaults, secrets, and how values are checked.

Declared settings let a connection be validated before it is saved, and let every output know
which values are secret and must be masked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from iotask.connectors.errors import SettingsError
from iotask.connectors.masking import MASK, mask

KINDS = ("str", "int", "bool", "list", "url")
ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Setting:
    """One declared setting of a connector."""

    name: str
    kind: str = "str"
    required: bool = False
    default: Any = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: kind must be one of {', '.join(KINDS)}")

    def from_text(self, text: str) -> Any:
        """Turn a command-line ``KEY=VALUE`` value into this setting's type.

        A secret may be ``env:NAME``: read from that environment variable at run time, so the
        password never sits in ``core_connection``.
        """
        if self.secret and text.startswith(ENV_PREFIX) and ENV_NAME.match(text[len(ENV_PREFIX):]):
            return {"env": text[len(ENV_PREFIX):]}
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                got = MASK if self.secret else repr(text)
                raise SettingsError(
                    f"setting {self.name!r} must be a whole number, got {got}"
                ) from None
        if self.kind == "bool":
            word = text.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            got = MASK if self.secret else repr(text)
            raise SettingsError(f"setting {self.name!r} must be true or false, got {got}")
        if self.kind == "list":
            return [item.strip() for item in text.split(",") if item.strip()]
        return text

    def check(self, value: Any) -> Any:
        """Validate a typed value (from JSON or from_text); return it normalised."""
        if self.secret and isinstance(value, dict):
            if set(value) != {"env"} or not isinstance(value["env"], str) \
                    or not ENV_NAME.match(value["env"]):
                raise SettingsError(f'setting {self.name!r}: a secret from the environment is '
                                    '{"env": "VARIABLE_NAME"} (or --set KEY=env:VARIABLE_NAME)')
            return value
        expected = {"str": str, "url": str, "int": int, "bool": bool, "list": list}[self.kind]
        if (self.kind == "int" and isinstance(value, bool)) or not isinstance(value, expected):
            got = "a secret of another type" if self.secret else json.dumps(value)
            raise SettingsError(
                f"setting {self.name!r} must be {_kind_words(self.kind)}, got {got}"
            )
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise SettingsError(f"setting {self.name!r} must be a list of strings")
        if self.choices and value not in self.choices:
            got = MASK if self.secret else repr(value)
            raise SettingsError(
                f"setting {self.name!r} must be one of {', '.join(self.choices)}, got {got}"
            )
        return value

    def shown(self, value: Any) -> Any:
        """The value as it may appear in output: secrets masked, URL passwords hidden."""
        if value is None or value == "":
            return value
        if self.secret:
            return value if isinstance(value, dict) else MASK  # a variable's name is no secret
        if self.kind == "url":
            return mask(value)
        return value


def _kind_words(kind: str) -> str:
    return {
        "str": "a string",
        "url": "a URL string",
        "int": "a whole number",
        "bool": "true or false",
        "list": "a list of strings",
    }[kind]
