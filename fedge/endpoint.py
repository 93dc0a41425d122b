"""Broker addresses: ``mqtt://host:port`` and ``mqtts://host:port`` as values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from fedge.errors import ConfigError

DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerUrl:
    """Where a broker listens; ``mqtts`` means TLS."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.host or any(c in self.host for c in "/ @"):
            raise ConfigError("broker", f"host {self.host!r} is not a host name or address")
        if not 0 < self.port < 65536:
            raise ConfigError("broker", f"port {self.port} is outside 1-65535")

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (a bare ``host:port`` too)."""
        text = url.strip()
        shown = _masked(text)
        if "://" not in text:
            text = "mqtt://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            # urllib's message quotes parts of the URL, which may be a masked password.
            detail = f": {exc}" if shown == url.strip() else ""
            raise ConfigError("broker", f"{shown!r} is not a broker URL{detail}") from None
        if parts.scheme not in DEFAULT_PORTS:
            raise ConfigError("broker", f"{shown!r}: scheme must be mqtt:// or mqtts://")
        if parts.username or parts.password:
            raise ConfigError(
                "broker", f"{shown!r}: pass credentials with --username/--password, not in the URL"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("broker", f"{shown!r}: a broker URL has no path or query")
        if not parts.hostname:
            raise ConfigError("broker", f"{shown!r} names no host")
        # ``is None``, not ``or``: an explicit port 0 is an error, not a request for the default.
        port = DEFAULT_PORTS[parts.scheme] if port is None else port
        return cls(parts.hostname, port, parts.scheme == "mqtts")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def _masked(url: str) -> str:
    """``url`` for error messages: everything before an ``@`` may be a password, so mask it."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@", r"\1***@", url, flags=re.DOTALL)
