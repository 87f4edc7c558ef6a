"""The one error type that means "the user's input is wrong" (CLI exit code 2)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TypeVar

Choice = TypeVar("Choice", bound=StrEnum)


class InputError(ValueError):
    """Bad input: a one-line, user-facing message that names the file and the problem.

    The CLI turns it into `error: <message>` and exit code 2, without a traceback.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


def parse_choice(choices: type[Choice], value: str | Choice, what: str) -> Choice:
    """The member of `choices` named `value`, or an InputError naming `what` and every choice (one line)."""
    try:
        return choices(value)
    except ValueError:
        raise InputError(None, f"{what} must be one of {', '.join(m.value for m in choices)}, not {value!r}") from None
