"""Checks of call arguments, before any query: a bad value is refused naming the parameter.

The drivers would otherwise fail in their own words, differently per backend (an integer
program id is ``operator does not exist: text = smallint`` on PostgreSQL and a silent miss
on SQLite; ``2**70`` rows is an OverflowError or ``bigint out of range``).
"""

from __future__ import annotations

import operator
from typing import Any

from genesis.database.errors import InvalidArgumentError

__all__ = ["id_argument", "int_argument"]

INT32_MAX = 2**31 - 1
MAX_ID_CHARS = 1024


def id_argument(value: Any, name: str = "program_id") -> str:
    """Return ``value`` if it can be a stored id: a string of valid Unicode without NUL."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name}: expected a string, got {type(value).__name__} "
                                   f"{value!r:.80}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(f"{name}: longer than {MAX_ID_CHARS} characters")
    if "\x00" in value:
        raise InvalidArgumentError(f"{name}: contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(f"{name}: is not valid Unicode (lone surrogate at "
                                       f"character {exc.start})") from None
    return value


def int_argument(value: Any, name: str, minimum: int = -INT32_MAX - 1,
                 maximum: int = INT32_MAX) -> int:
    """Return ``value`` as an int within [minimum, maximum] (bools refused)."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name}: expected an integer, got a bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name}: expected an integer, got "
                                   f"{type(value).__name__} {value!r:.80}") from None
    if not minimum <= number <= maximum:
        raise InvalidArgumentError(f"{name}: must be from {minimum:,} to {maximum:,}, got "
                                   f"{number:,}")
    return number
