"""Configuration: the [mqtt] table merged with command-line flags, and clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fedge.cli import add_common_arguments
from fedge.config import load_file, mqtt_settings, section
from fedge.endpoint import BrokerUrl
from fedge.errors import ConfigError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    return parser.parse_args(list(argv))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fedge.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_flags() -> None:
    """With nothing given, fedge talks MQTT 5 to a local broker under fedge/v1."""
    settings = mqtt_settings(_args(), {})

    assert settings.url == BrokerUrl("127.0.0.1", 1883)
    assert settings.options.protocol == "5"
    assert settings.topics.prefix == "fedge/v1"
    assert settings.options.tls is None


def test_flags_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag wins over the same key in the file; the password comes from the environment."""
    monkeypatch.setenv("BROKER_PW", "pw-from-env")
    config = load_file(
        _write(
            tmp_path,
            '[mqtt]\nbroker = "mqtt://10.0.0.5:1884"\nprotocol = "3.1.1"\n'
            'username = "node-7"\npassword_env = "BROKER_PW"\ntopic_prefix = "site-a/fedge/v1"\n',
        )
    )

    settings = mqtt_settings(_args("--broker", "mqtt://127.0.0.1:2000"), config)

    assert settings.url == BrokerUrl("127.0.0.1", 2000)
    assert settings.options.protocol == "3.1.1"
    assert settings.options.username == "node-7"
    assert settings.options.password == "pw-from-env"  # noqa: S105 - test value
    assert settings.topics.prefix == "site-a/fedge/v1"


def test_tls_files_need_an_mqtts_url(tmp_path: Path) -> None:
    """CA/cert files with a plain mqtt:// URL are a configuration error, not a silent downgrade."""
    ca = tmp_path / "ca.pem"
    ca.write_text("dummy")

    with pytest.raises(ConfigError, match="not an mqtts://"):
        mqtt_settings(_args("--ca-file", str(ca)), {})
    settings = mqtt_settings(_args("--ca-file", str(ca), "--broker", "mqtts://h"), {})
    assert settings.options.tls is not None
    assert settings.options.tls.ca_file == str(ca)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\nbrokr = 'x'\n", "mqtt.brokr: unknown key"),
        ("[mqtt]\nkeepalive_s = -1\n", "mqtt.keepalive_s"),
        ("[mqtt]\ntopic_prefix = 'a/+/b'\n", "topic_prefix"),
        ("[mqtt]\npassword_env = 'FEDGE_TEST_UNSET_VAR'\n", "FEDGE_TEST_UNSET_VAR is not set"),
        ("mqtt = 3\n", "mqtt: must be a table"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Every bad value raises ConfigError naming the key."""
    config = load_file(_write(tmp_path, text))

    with pytest.raises(ConfigError, match=message):
        mqtt_settings(_args(), config)


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    """A missing file or invalid TOML is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(_write(tmp_path, "[mqtt\n"))


def test_section_rejects_unknown_keys() -> None:
    """Component tables are checked against their known keys."""
    assert section({"edge": {"node": "n1"}}, "edge", frozenset({"node"})) == {"node": "n1"}
    with pytest.raises(ConfigError, match=r"edge\.nod"):
        section({"edge": {"nod": "n1"}}, "edge", frozenset({"node"}))
