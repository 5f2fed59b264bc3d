"""Events ⇄ JSON-ready dicts, generic over every ``Event`` subclass of every game.

An event becomes ``{"type": "<module>.<class>", <field>: <value>, ...}``. Field values follow the
field's annotation: enums by value, named tuples and tuples as lists, primitives as they are.
Decoding only ever builds registered ``Event`` subclasses (nothing is imported by name) and checks
every value against its annotation, so it is safe on untrusted input (the ``serve`` endpoint).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from detente.games.base import Event  # importing this package imports (registers) every game

TYPE_KEY = "type"


class EventDecodeError(ValueError):
    """JSON data that is not a list of known events with well-typed fields."""


def event_type_name(cls: type[Event]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def event_types() -> dict[str, type[Event]]:
    """Every (transitively) defined ``Event`` subclass by its type name, ``Event`` included."""
    found: dict[str, type[Event]] = {}
    stack: list[type[Event]] = [Event]
    while stack:
        cls = stack.pop()
        found[event_type_name(cls)] = cls
        stack.extend(cls.__subclasses__())
    return found


@functools.cache
def _fields(cls: type[Event]) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if TYPE_KEY in names:
        raise TypeError(f"{cls.__name__} has a field named {TYPE_KEY!r}, reserved by the codec")
    return tuple((name, hints[name]) for name in names)


def _is_named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _encode(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return None if value is None else _encode(value, _non_none(args))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return value.value
    if _is_named_tuple(hint):
        field_hints = typing.get_type_hints(hint)
        return [_encode(getattr(value, name), field_hints[name]) for name in hint._fields]
    if origin in (tuple, list):
        hints = _item_hints(args, len(value))
        return [_encode(item, h) for item, h in zip(value, hints, strict=True)]
    if hint in (int, float, bool, str):
        return hint(value)  # plain Python values (numpy scalars are not JSON-ready)
    raise TypeError(f"the event codec does not support fields of type {hint!r}")


def _decode(data: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return None if data is None else _decode(data, _non_none(args), where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(data)
        except ValueError:
            raise EventDecodeError(f"{where}: {data!r} is not a {hint.__name__}") from None
    if _is_named_tuple(hint):
        field_hints = typing.get_type_hints(hint)
        items = _sequence(data, len(hint._fields), where)
        return hint(
            *(
                _decode(item, field_hints[name], f"{where}.{name}")
                for item, name in zip(items, hint._fields, strict=True)
            )
        )
    if origin in (tuple, list):
        hints = _item_hints(args, len(data) if isinstance(data, list) else 0)
        items = _sequence(data, len(hints), where)
        decoded = [
            _decode(item, h, f"{where}[{i}]")
            for i, (item, h) in enumerate(zip(items, hints, strict=True))
        ]
        return tuple(decoded) if origin is tuple else decoded
    return _primitive(data, hint, where)


def _primitive(data: Any, hint: Any, where: str) -> Any:
    if hint is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if hint is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if hint in (bool, str) and isinstance(data, hint):
        return data
    if hint in (int, float, bool, str):
        raise EventDecodeError(f"{where}: expected {hint.__name__}, got {data!r}")
    raise TypeError(f"the event codec does not support fields of type {hint!r}")


def _non_none(args: tuple[Any, ...]) -> Any:
    rest = [a for a in args if a is not type(None)]
    if len(rest) != 1:
        raise TypeError(f"the event codec supports only `X | None` unions, not {args!r}")
    return rest[0]


def _item_hints(args: tuple[Any, ...], length: int) -> list[Any]:
    """Per-item annotations of ``tuple[X, ...]``, ``list[X]`` (any length) or ``tuple[X, Y]``."""
    if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis):
        return [args[0]] * length
    return list(args)


def _sequence(data: Any, length: int, where: str) -> list[Any]:
    if not isinstance(data, list) or len(data) != length:
        raise EventDecodeError(f"{where}: expected a list of {length} items, got {data!r}")
    return data


def encode_events(events: Iterable[Event]) -> list[dict[str, Any]]:
    """JSON-ready dicts, one per event, in order."""
    encoded = []
    for event in events:
        cls = type(event)
        item: dict[str, Any] = {TYPE_KEY: event_type_name(cls)}
        for name, hint in _fields(cls):
            item[name] = _encode(getattr(event, name), hint)
        encoded.append(item)
    return encoded


def decode_events(data: Any) -> list[Event]:
    """Events from ``encode_events`` output; ``EventDecodeError`` on anything else."""
    if not isinstance(data, list):
        raise EventDecodeError(f"events must be a list, got {type(data).__name__}")
    known = event_types()
    events = []
    for index, item in enumerate(data):
        if not isinstance(item, Mapping) or item.get(TYPE_KEY) not in known:
            raise EventDecodeError(f"events[{index}]: not a known event type: {item!r:.200}")
        cls = known[item[TYPE_KEY]]
        fields = _fields(cls)
        extra = set(item) - {TYPE_KEY} - {name for name, _ in fields}
        missing = [name for name, _ in fields if name not in item]
        if extra or missing:
            raise EventDecodeError(
                f"events[{index}] ({cls.__name__}): unknown fields {sorted(extra)}, "
                f"missing fields {missing}"
            )
        values = {
            name: _decode(item[name], hint, f"events[{index}].{name}") for name, hint in fields
        }
        events.append(cls(**values))
    return events
