"""The one error of decoding, with the path of the field as the client spelled it."""

from __future__ import annotations

import orjson


class DecodeError(ValueError):
    """A JSON value that is not a value of its field.

    The path is built while the error travels up through the messages that hold the
    field, so a successful decode never spends time on paths: keys are joined by `.`,
    `[n]` is the n-th element of a list and `[key]` the value of a map under `key`.
    """

    def __init__(self, description: str, key: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self._steps: list[str] = [] if key is None else [f".{key}"]

    def at(self, key: str) -> DecodeError:
        """The error, one object key further out."""
        self._steps.append(f".{key}")
        return self

    def at_item(self, index: int | str) -> DecodeError:
        """The error, one list index or map key further out."""
        self._steps.append(f"[{index}]")
        return self

    @property
    def path(self) -> str:
        return "".join(reversed(self._steps)).removeprefix(".")

    def __str__(self) -> str:
        return f"{self.path}: {self.description}" if self._steps else self.description


def show(value: object) -> str:
    """A JSON value as a short quote for an error description."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
