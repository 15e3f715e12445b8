"""Binding and checking of method parameters, done here rather than by pyln.

pyln binds parameters with ``inspect.Signature.bind``: a missing or unknown parameter raises TypeError inside
pyln, which answers with a Python traceback. Each method therefore takes ``*args, **kwargs`` and binds them
against its declared parameters here, answering -32602 with a message a caller can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hashpool_cln.desk import claims
from hashpool_cln.plugin.bridge import ParamError

MAX_MSAT = 21_000_000 * 100_000_000 * 1000  # no amount beyond the supply of bitcoin
_MSAT_TEXT = re.compile(r"^([0-9]{1,24})(msat|sat)?$")
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes "²" and "٣"


def msat(name: str, value: Any) -> int:
    """An amount in msat: an integer, or a string ``N``, ``Nmsat`` or ``Nsat`` as lightning-cli passes it."""
    if isinstance(value, bool):
        raise ParamError(f"{name}: expected an amount in msat, got {value!r}")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and (m := _MSAT_TEXT.fullmatch(value.strip())):
        amount = int(m.group(1)) * (1000 if m.group(2) == "sat" else 1)
    else:
        raise ParamError(f"{name}: expected an amount in msat (a whole number, or N'msat' / N'sat'), got {value!r}")
    if amount < 0 or amount > MAX_MSAT:
        raise ParamError(f"{name}: amount {amount} msat is out of range")
    return amount


def text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParamError(f"{name}: expected a non-empty string")
    return value.strip()


def claim(name: str, value: Any) -> str:
    """A claim secret: 64 lowercase hex characters (refused with -32602, as ``claims.check`` says)."""
    return claims.check(value, name)


def note(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParamError(f"{name}: expected a string")
    if len(value) > 512:
        raise ParamError(f"{name}: at most 512 characters")
    return value


def count(name: str, value: Any, *, low: int = 1, high: int = 1000) -> int:
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParamError(f"{name}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def one_of(choices: Sequence[str]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise ParamError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    return check


@dataclass(frozen=True)
class Param:
    name: str
    check: Callable[[str, Any], Any]
    required: bool = False
    default: Any = None


def usage(params: Sequence[Param]) -> str:
    """The usage line lightningd shows in ``help``: required names bare, optional ones in brackets."""
    return " ".join(p.name if p.required else f"[{p.name}]" for p in params)


def bind(params: Sequence[Param], args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Map a call's positional or keyword parameters onto ``params``; every value checked."""
    names = [p.name for p in params]
    if args and kwargs:
        raise ParamError("pass parameters either all by position or all by name")
    if len(args) > len(params):
        raise ParamError(f"too many parameters: expected at most {len(params)} ({usage(params)})")
    given: dict[str, Any] = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise ParamError(f"unknown parameter {key!r}; expected {usage(params)}")
        given[key] = value
    bound: dict[str, Any] = {}
    for p in params:
        value = given.get(p.name)
        if value is None:
            if p.required:
                raise ParamError(f"missing required parameter {p.name!r} ({usage(params)})")
            bound[p.name] = p.default
        else:
            bound[p.name] = p.check(p.name, value)
    return bound
