"""Mutation of valid bodies: any replaced, deleted or added value is a message or a WireError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fedge.errors import WireError
from fedge.wire import (
    MESSAGE_TYPES,
    Message,
    decode,
    encode,
)
from tests.fedge.wire_strategies import (
    keys,
    messages,
    msgpack_values,
)
from tests.fedge.wire_support import (
    fields_of,
    frame,
    outcome,
)


def paths_in(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (map keys and list indices) to a value inside a decoded body."""
    children: list[tuple[Any, object]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    found: list[tuple[Any, ...]] = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths_in(child, (*prefix, key)))
    return found


def lookup(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


@settings(deadline=None, max_examples=400)
@given(message=messages, data=st.data())
def test_replacing_any_value_yields_a_message_or_a_wire_error(
    message: Message, data: st.DataObject
) -> None:
    """Swap one value at any depth for a random msgpack value of another type: never a crash."""
    # Prepare
    fields = fields_of(message)
    path = data.draw(st.sampled_from(paths_in(fields)), label="path")
    original = lookup(fields, path)
    replacement = data.draw(
        msgpack_values.filter(lambda v: type(v) is not type(original)), label="replacement"
    )
    lookup(fields, path[:-1])[path[-1]] = replacement

    # Execute
    result = outcome(frame(fields))

    # Assert
    assert isinstance(result, (WireError, *MESSAGE_TYPES))
    if isinstance(result, WireError):
        assert result.field
    else:
        assert decode(encode(result)) == result


@settings(deadline=None, max_examples=200)
@given(message=messages, data=st.data())
def test_deleting_or_adding_any_key_yields_a_message_or_a_wire_error(
    message: Message, data: st.DataObject
) -> None:
    """Remove a key or insert a random one at any depth: never any exception but WireError."""
    # Prepare
    fields = fields_of(message)
    maps = [p for p in [(), *paths_in(fields)] if isinstance(lookup(fields, p), dict)]
    where: dict[str, Any] = lookup(fields, data.draw(st.sampled_from(maps), label="map"))
    delete = data.draw(st.booleans(), label="delete")
    if where and delete:
        del where[data.draw(st.sampled_from(sorted(where)), label="key")]
    else:
        where[data.draw(keys, label="new key")] = data.draw(msgpack_values, label="value")

    # Execute
    result = outcome(frame(fields))

    # Assert
    assert isinstance(result, (WireError, *MESSAGE_TYPES))
