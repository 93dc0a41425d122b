"""The ``fedge/v1`` topic scheme: building, parsing, filters and id validation."""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedge.errors import FedgeError, TopicError
from fedge.topics import (
    DEFAULT_PREFIX,
    ID_MAX_LEN,
    LabelTopic,
    ModelTopic,
    NodeChannel,
    NodeTopic,
    SensorTopic,
    Topic,
    TopicRoot,
    validate_id,
)

ID_ALPHABET: Final = string.ascii_letters + string.digits + "_.:-"
PREFIXES: Final = [DEFAULT_PREFIX, "site-a/fedge/v1", "t", "a.b:c/d-e_f/0"]
BAD_IDS: Final[list[object]] = [
    "",
    "a/b",
    "/",
    "+",
    "#",
    "n+",
    "n#",
    " ",
    "n 1",
    " n",
    "n\t",
    "n\n",
    "n\x00",
    "ñ",
    "$SYS",
    "x" * (ID_MAX_LEN + 1),
    None,
    7,
    b"n1",
    ["n1"],
]
ids = st.text(ID_ALPHABET, min_size=1, max_size=ID_MAX_LEN)
prefixes = st.lists(st.text(ID_ALPHABET, min_size=1, max_size=16), min_size=1, max_size=4).map(
    "/".join
)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching for filters with '+' only, which is all fedge builds."""
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    return len(filter_levels) == len(topic_levels) and all(
        f in ("+", t) for f, t in zip(filter_levels, topic_levels, strict=True)
    )


def all_topics(root: TopicRoot, node: str, device: str, model: str) -> list[Topic]:
    """One topic of every type and channel under ``root``."""
    return [
        root.sensors(node, device),
        root.labels(node, device),
        *(root.node(node, channel) for channel in NodeChannel),
        root.model(model),
    ]


@st.composite
def topics(draw: st.DrawFn) -> Topic:
    root = TopicRoot(draw(prefixes))
    return draw(st.sampled_from(all_topics(root, draw(ids), draw(ids), draw(ids))))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_topics_render_the_documented_scheme(prefix: str) -> None:
    """Each topic type renders as ``{prefix}/...`` exactly as the module documents."""
    # Prepare
    root = TopicRoot(prefix)

    # Execute
    rendered = [str(t) for t in all_topics(root, "n1", "pump-7", "lstm-ae")]

    # Assert
    assert rendered == [
        f"{prefix}/sensors/n1/pump-7",
        f"{prefix}/labels/n1/pump-7",
        f"{prefix}/nodes/n1/status",
        f"{prefix}/nodes/n1/events",
        f"{prefix}/nodes/n1/updates",
        f"{prefix}/nodes/n1/commands",
        f"{prefix}/models/lstm-ae/global",
    ]


def test_default_root_is_fedge_v1() -> None:
    """Topics built without a root live under ``fedge/v1``."""
    # Prepare / Execute
    topic = SensorTopic("n1", "d1")

    # Assert
    assert topic.root == TopicRoot() == TopicRoot(DEFAULT_PREFIX)
    assert str(topic) == "fedge/v1/sensors/n1/d1"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_parse_returns_the_topic_that_was_built(prefix: str) -> None:
    """parse(str(topic)) gives back an equal value object of the same type."""
    # Prepare
    root = TopicRoot(prefix)
    built = all_topics(root, "n.1", "d:2", "m-3")

    # Execute
    parsed = [root.parse(str(t)) for t in built]

    # Assert
    assert parsed == built
    assert [type(p) for p in parsed] == [type(t) for t in built]


@settings(deadline=None, max_examples=300)
@given(topic=topics())
def test_every_topic_round_trips_through_its_string(topic: Topic) -> None:
    """For random prefixes, ids and channels, parsing a rendered topic gives it back."""
    # Prepare
    text = str(topic)

    # Execute
    parsed = topic.root.parse(text)

    # Assert
    assert parsed == topic
    assert str(parsed) == text


@pytest.mark.parametrize("prefix", PREFIXES)
def test_filters_render_the_expected_wildcards(prefix: str) -> None:
    """Filters use '+' for "every node" and for the device, model or channel level."""
    # Prepare
    root = TopicRoot(prefix)

    # Execute
    filters = [
        root.sensors_filter(),
        root.sensors_filter("n1"),
        root.labels_filter(),
        root.labels_filter("n1"),
        root.node_filter(NodeChannel.STATUS),
        root.node_filter(NodeChannel.UPDATES, "n1"),
        root.models_filter(),
    ]

    # Assert
    assert filters == [
        f"{prefix}/sensors/+/+",
        f"{prefix}/sensors/n1/+",
        f"{prefix}/labels/+/+",
        f"{prefix}/labels/n1/+",
        f"{prefix}/nodes/+/status",
        f"{prefix}/nodes/n1/updates",
        f"{prefix}/models/+/global",
    ]


@settings(deadline=None, max_examples=200)
@given(prefix=prefixes, node=ids, other=ids, device=ids, model=ids)
def test_each_filter_matches_exactly_its_own_topics(
    prefix: str, node: str, other: str, device: str, model: str
) -> None:
    """A filter matches the topics of its type (and node) and no topic of another."""
    # Prepare
    root = TopicRoot(prefix)
    built = all_topics(root, node, device, model)
    filters = {
        root.sensors_filter(): [built[0]],
        root.sensors_filter(node): [built[0]],
        root.labels_filter(): [built[1]],
        root.labels_filter(node): [built[1]],
        **{root.node_filter(c): [root.node(node, c)] for c in NodeChannel},
        **{root.node_filter(c, node): [root.node(node, c)] for c in NodeChannel},
        root.models_filter(): [built[-1]],
    }

    # Execute
    matched = {f: [t for t in built if matches(f, str(t))] for f in filters}

    # Assert
    assert matched == filters
    if other != node:
        assert not matches(root.sensors_filter(other), str(built[0]))


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "n 1"])
def test_filters_reject_bad_node_ids(bad: str) -> None:
    """A node given to a filter is validated like any id, so it cannot widen the filter."""
    # Prepare
    root = TopicRoot()

    # Execute / Assert
    for build in (root.sensors_filter, root.labels_filter):
        with pytest.raises(TopicError):
            build(bad)
    with pytest.raises(TopicError):
        root.node_filter(NodeChannel.STATUS, bad)


def test_validate_id_accepts_every_allowed_character_up_to_the_maximum_length() -> None:
    """Ids of 1 to 64 characters of A-Z a-z 0-9 _ . : - are valid and returned unchanged."""
    # Prepare
    candidates = ["a", "Z", "0", "_", ".", ":", "-", "..", ID_ALPHABET[:64], ID_ALPHABET[-64:]]

    # Execute
    validated = [validate_id("node", c) for c in candidates]

    # Assert
    assert validated == candidates


@pytest.mark.parametrize("bad", BAD_IDS)
def test_validate_id_rejects_what_cannot_be_a_single_topic_level(bad: object) -> None:
    """Separators, wildcards, whitespace, empty, long, non-ASCII and non-str ids are refused."""
    # Prepare / Execute
    with pytest.raises(TopicError) as info:
        validate_id("device", bad)

    # Assert
    assert str(info.value).startswith("device id")


@pytest.mark.parametrize("bad", BAD_IDS)
def test_every_topic_field_rejects_bad_ids(bad: object) -> None:
    """Each id field of each topic type validates itself on construction."""
    # Prepare
    builders: list[Callable[[], object]] = [
        lambda: SensorTopic(bad, "d"),  # type: ignore[arg-type]
        lambda: SensorTopic("n", bad),  # type: ignore[arg-type]
        lambda: LabelTopic(bad, "d"),  # type: ignore[arg-type]
        lambda: LabelTopic("n", bad),  # type: ignore[arg-type]
        lambda: NodeTopic(bad, NodeChannel.EVENTS),  # type: ignore[arg-type]
        lambda: ModelTopic(bad),  # type: ignore[arg-type]
    ]

    # Execute / Assert
    for build in builders:
        with pytest.raises(TopicError):
            build()


def test_long_ids_are_shown_truncated_in_the_error() -> None:
    """An absurdly long id is cut in the message, which still says what is allowed."""
    # Prepare
    huge = "x" * 10_000

    # Execute
    with pytest.raises(TopicError) as info:
        validate_id("model", huge)

    # Assert
    assert len(str(info.value)) < 200
    assert "1-64 characters" in str(info.value)


def test_node_topic_requires_a_node_channel() -> None:
    """A channel must be a NodeChannel, not a string that happens to match one."""
    # Prepare / Execute / Assert
    with pytest.raises(TopicError):
        NodeTopic("n1", "status")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "fedge/v1",
        "fedge/v1/",
        "fedge/v2/sensors/n/d",
        "fedge/v1x/sensors/n/d",
        "Fedge/v1/sensors/n/d",
        "site-a/fedge/v1/sensors/n/d",
        "/fedge/v1/sensors/n/d",
        "fedge/v1/sensors/n",
        "fedge/v1/sensors/n/d/extra",
        "fedge/v1/sensors/n/d/",
        "fedge/v1/sensors//d",
        "fedge/v1/sensors/n/+",
        "fedge/v1/sensors/+/+",
        "fedge/v1/sensors/#",
        "fedge/v1/Sensors/n/d",
        "fedge/v1/labels/n",
        "fedge/v1/nodes/n/status/x",
        "fedge/v1/nodes/n/STATUS",
        "fedge/v1/nodes/n/heartbeat",
        "fedge/v1/nodes/n",
        "fedge/v1/nodes/n 1/status",
        "fedge/v1/models/m/local",
        "fedge/v1/models/m",
        "fedge/v1/models/m/global/x",
        "fedge/v1/unknown/n/d",
        "$SYS/broker/uptime",
    ],
)
def test_parse_rejects_foreign_and_malformed_topics(topic: str) -> None:
    """Foreign prefixes, unknown sections or channels, wrong depth and bad ids are refused."""
    # Prepare
    root = TopicRoot()

    # Execute / Assert
    with pytest.raises(TopicError):
        root.parse(topic)


@pytest.mark.parametrize("topic", [None, b"fedge/v1/sensors/n/d", 7])
def test_parse_rejects_non_string_topics(topic: object) -> None:
    """A topic that is not a string is a TopicError, not an AttributeError."""
    # Prepare
    root = TopicRoot()

    # Execute / Assert
    with pytest.raises(TopicError):
        root.parse(topic)  # type: ignore[arg-type]


def test_parse_does_not_confuse_prefixes_that_share_a_start() -> None:
    """Root ``a/b`` does not claim ``a/bc/...`` and a deeper root is not the default one."""
    # Prepare
    short, deep = TopicRoot("a/b"), TopicRoot("site-a/fedge/v1")
    deep_topic = str(deep.model("m"))

    # Execute / Assert
    with pytest.raises(TopicError):
        short.parse("a/bc/sensors/n/d")
    with pytest.raises(TopicError):
        TopicRoot().parse(deep_topic)
    assert deep.parse(deep_topic) == deep.model("m")


@pytest.mark.parametrize(
    "prefix",
    ["", "/", "a/", "/a", "a//b", "a/+", "#", "a/#", "a b", "ñ", "x" * 65, "a/" + "x" * 65],
)
def test_invalid_prefixes_are_rejected(prefix: str) -> None:
    """Each prefix level is a non-empty id-like string without wildcards or separators."""
    # Prepare / Execute / Assert
    with pytest.raises(TopicError):
        TopicRoot(prefix)


@pytest.mark.parametrize("prefix", [None, 7, b"fedge/v1", ["fedge", "v1"]])
def test_non_string_prefixes_are_rejected(prefix: object) -> None:
    """A prefix that is not a string is a TopicError, not an AttributeError."""
    # Prepare / Execute / Assert
    with pytest.raises(TopicError):
        TopicRoot(prefix)  # type: ignore[arg-type]


def test_topics_are_frozen_hashable_values() -> None:
    """Topics compare by value (root included), hash consistently and cannot be mutated."""
    # Prepare
    a, b = SensorTopic("n", "d"), SensorTopic("n", "d")
    elsewhere = SensorTopic("n", "d", TopicRoot("site-b/fedge/v1"))

    # Execute
    index = {a: "first"}

    # Assert
    assert a == b
    assert hash(a) == hash(b)
    assert index[b] == "first"
    assert a != elsewhere
    assert len({SensorTopic("n", "d"), LabelTopic("n", "d")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.node = "other"  # type: ignore[misc]


def test_topic_error_is_a_value_error_and_a_fedge_error() -> None:
    """Callers can catch TopicError as ValueError or as the fedge base error."""
    # Prepare / Execute / Assert
    assert issubclass(TopicError, ValueError)
    assert issubclass(TopicError, FedgeError)


@settings(deadline=None, max_examples=300)
@given(text=st.text(max_size=80))
def test_parse_of_arbitrary_text_raises_only_topic_error(text: str) -> None:
    """parse either returns a topic that renders back to the input or raises TopicError."""
    # Prepare
    root = TopicRoot()

    # Execute
    try:
        parsed = root.parse(text)
    except TopicError:
        return

    # Assert
    assert str(parsed) == text


@settings(deadline=None, max_examples=300)
@given(
    levels=st.lists(
        st.sampled_from(["sensors", "labels", "nodes", "models", "global", "status", "+", ""])
        | st.text(max_size=6),
        max_size=5,
    )
)
def test_parse_of_arbitrary_levels_under_the_prefix_raises_only_topic_error(
    levels: list[str],
) -> None:
    """Random level lists under the right prefix parse to a matching topic or a TopicError."""
    # Prepare
    root = TopicRoot()
    text = "/".join([DEFAULT_PREFIX, *levels])

    # Execute
    try:
        parsed = root.parse(text)
    except TopicError:
        return

    # Assert
    assert str(parsed) == text
