"""fedge: federated learning for IoT edge devices over a self-hosted MQTT data path.

This package is the contract every component shares: topic names, the wire codec, the MQTT
client wrapper, the broker launcher, configuration and the ``fedge`` command line. It never
imports torch.
"""

__version__ = "0.1.0"
