"""Mosquitto config templates: the bundled ones in ``broker_config/`` and the user's own files.

Templates are ``string.Template`` texts (``listener $port $bind_address``). Rendering is strict:
a placeholder without a value is an error, never an empty string in a config Mosquitto would
then interpret in its own way.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Final

from fedge.errors import BrokerError

TEMPLATE_PACKAGE: Final = "fedge.broker_config"
TEMPLATE_SUFFIX: Final = ".conf.template"


def bundled_templates() -> list[str]:
    """Names of the config templates shipped in ``broker_config/`` (``dev``, ``test``, ...)."""
    return sorted(
        entry.name.removesuffix(TEMPLATE_SUFFIX)
        for entry in files(TEMPLATE_PACKAGE).iterdir()
        if entry.name.endswith(TEMPLATE_SUFFIX)
    )


def render_config(template: str | Path, **values: object) -> str:
    """Fill a Mosquitto config template with ``values`` (``port=1883, data_dir=...``).

    ``template`` is a bundled template name (``"dev"`` or ``"dev.conf.template"``) or the path
    of a file. Every ``$placeholder`` must get a value; values may not span lines, so a value
    can never smuggle in a config directive.
    """
    name, text = read_template(template)
    for key, value in values.items():
        if any(char in str(value) for char in "\r\n\0"):
            raise BrokerError(f"broker config {name}: value for ${key} contains a line break")
    try:
        return Template(text).substitute({key: str(value) for key, value in values.items()})
    except KeyError as exc:
        given = ", ".join(sorted(values)) or "none"
        raise BrokerError(
            f"broker config {name} needs a value for ${exc.args[0]} (given: {given})"
        ) from None
    except ValueError as exc:
        raise BrokerError(f"broker config {name} has a malformed placeholder: {exc}") from None


def read_template(template: str | Path) -> tuple[str, str]:
    """The display name and text of a bundled template (a bare name) or a config file."""
    if isinstance(template, str) and "/" not in template:
        resource = files(TEMPLATE_PACKAGE) / (
            template if template.endswith(TEMPLATE_SUFFIX) else template + TEMPLATE_SUFFIX
        )
        if resource.is_file():
            return template, resource.read_text(encoding="utf-8")
    path = Path(template)
    if not path.is_file():
        raise BrokerError(
            f"broker config {str(template)!r} not found: it is neither a file nor a bundled "
            f"template ({', '.join(bundled_templates())})"
        )
    try:
        return str(path), path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BrokerError(f"broker config {path} cannot be read: {exc}") from None
