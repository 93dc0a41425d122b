"""Reading injected behaviour from the command line (``--inject SPEC``) and scenario files.

A spec is a kind followed by ``key=value`` pairs, separated by commas or spaces::

    spike,at=90s,channel=vibration_rms,device=node-1/pump-0,magnitude=2
    cavitation,at=10m,for=45s,device=node-2/*
    drift,at=1h,channel=pressure,scale=1.25,over=5m

A scenario file says the same in TOML, one ``[[anomaly]]`` or ``[[drift]]`` table each::

    [[anomaly]]
    kind = "stuck"
    at = "2m"
    for = "30s"
    channel = ["temperature"]      # or "temperature", "pressure+flow", "*"
    device = "node-0/pump-1"       # NODE/DEVICE, DEVICE on every node, or "*"; globs allowed

    [[drift]]
    at = "1h"
    channel = "flow"
    shift = -0.1                   # -10 % of the channel's level

Times are seconds after the first reading, as a number or with a unit (``ms``, ``s``, ``m``,
``h``, ``d``). Every mistake is a ``ConfigError`` naming the spec or file entry and the bad part.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from device_sim.behaviour import MAX_TIME_S, Anomaly, Behaviour, Drift, Kind
from device_sim.pump import CHANNELS
from fedge.errors import ConfigError

ANOMALY_KEYS: Final = frozenset({"kind", "at", "for", "channel", "device", "magnitude"})
DRIFT_KEYS: Final = frozenset({"at", "over", "channel", "device", "scale", "shift"})
KINDS: Final = (*(k.label for k in Kind), "drift")
_DURATION_RE: Final = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|m|h|d)?\s*")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(key: str, value: object) -> float:
    """Seconds from a number or a string such as ``250ms``, ``90``, ``1.5m``, ``2h``, ``1d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.fullmatch(value)):
        seconds = float(match[1]) * _UNIT_S[match[2]]
    else:
        raise ConfigError(key, f"{value!r} is not a time such as 90, 90s, 1.5m, 2h or 250ms")
    if not 0 <= seconds <= MAX_TIME_S:
        raise ConfigError(key, f"{value!r} must be a non-negative time up to {MAX_TIME_S:g} s")
    return seconds


def parse_inject(spec: str) -> Behaviour:
    """One ``--inject`` spec as an ``Anomaly`` or a ``Drift``."""
    where = f"--inject {spec!r}"
    tokens = [token for token in re.split(r"[,\s]+", spec) if token]
    if not tokens:
        raise ConfigError("--inject", "empty spec: give KIND,at=TIME[,key=value...]")
    kind, *pairs = tokens
    fields: dict[str, Any] = {"kind": kind}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ConfigError(where, f"{pair!r} is not key=value")
        if key in fields:
            raise ConfigError(where, f"{key!r} is given twice")
        fields[key] = value
    return build(fields, where)


def load_scenario(path: str | Path) -> list[Behaviour]:
    """Every behaviour of a scenario file, in file order (anomalies first, then drifts)."""
    where = f"--scenario {path}"
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(where, "file does not exist") from None
    except OSError as exc:
        raise ConfigError(where, f"cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"anomaly", "drift"})
    if unknown:
        raise ConfigError(where, f"unknown table {unknown[0]!r} (use [[anomaly]] and [[drift]])")
    behaviours: list[Behaviour] = []
    for table in ("anomaly", "drift"):
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise ConfigError(where, f"write [[{table}]], one table per {table}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} {table}[{i}]", f"must be a table, got {entry!r}")
            fields = dict(entry)
            if table == "drift":
                if "kind" in fields:
                    raise ConfigError(f"{where} {table}[{i}]", "a drift takes no 'kind'")
                fields["kind"] = "drift"
            elif "kind" not in fields:
                raise ConfigError(
                    f"{where} {table}[{i}]", f"needs a kind ({', '.join(KINDS[:-1])})"
                )
            behaviours.append(build(fields, f"{where} {table}[{i}]"))
    return behaviours


def build(fields: Mapping[str, Any], where: str) -> Behaviour:
    """An ``Anomaly`` or ``Drift`` from string or TOML-typed fields; ``where`` prefixes errors."""
    kind = fields.get("kind")
    if kind not in KINDS:
        raise ConfigError(where, f"{kind!r} is not a behaviour ({', '.join(KINDS)})")
    allowed = DRIFT_KEYS | {"kind"} if kind == "drift" else ANOMALY_KEYS
    unknown = sorted(set(fields) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed - {"kind"}))
        raise ConfigError(where, f"unknown key {unknown[0]!r} for {kind} (known: {known})")
    if "at" not in fields:
        raise ConfigError(where, "needs at=TIME, when it starts after the first reading")
    try:
        common: dict[str, Any] = {"at_s": parse_duration("at", fields["at"])}
        if "channel" in fields:
            common["channels"] = _channels(fields["channel"])
        if "device" in fields:
            common["target"] = _text("device", fields["device"])
        if kind == "drift":
            if "channel" not in fields:
                raise ConfigError("channel", "a drift needs channel=NAME[+NAME...] (or *)")
            return Drift(
                **common,
                over_s=parse_duration("over", fields.get("over", 0)),
                scale=parse_number("scale", fields.get("scale", 1.0)),
                shift=parse_number("shift", fields.get("shift", 0.0)),
            )
        return Anomaly(
            kind=Kind[kind.upper()],
            **common,
            for_s=parse_duration("for", fields["for"]) if "for" in fields else None,
            magnitude=parse_number("magnitude", fields["magnitude"])
            if "magnitude" in fields
            else None,
        )
    except ConfigError as exc:
        raise ConfigError(where, f"{exc.key}: {exc.reason}") from None


def _channels(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [n.strip() for n in value.split("+")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [n.strip() for n in value]
    else:
        raise ConfigError("channel", f"{value!r} is not a channel name or a list of them")
    if names == ["*"]:
        return CHANNELS
    unknown = [n for n in names if n not in CHANNELS]
    if unknown or not names:
        raise ConfigError(
            "channel", f"{(unknown or [''])[0]!r} is not a channel ({', '.join(CHANNELS)}, *)"
        )
    return tuple(dict.fromkeys(names))


def parse_number(key: str, value: object) -> float:
    """A float from a number or its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(key, f"{value!r} is not a number")


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"{value!r} is not text")
    return value
