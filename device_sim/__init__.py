"""Device simulator: synthetic industrial sensors, recording replay and recording over MQTT."""
