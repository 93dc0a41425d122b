"""Mosquitto configuration templates shipped with fedge (installed as ``fedge.broker_config``).

The ``*.conf.template`` files are ``string.Template`` texts filled in by
:func:`fedge.broker.render_config`; the ``*.example`` files are copied and edited by hand. See
``README.md`` in this directory for what each one is for.
"""
