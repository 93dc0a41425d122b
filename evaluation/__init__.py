"""`fedge evaluate`: detection quality on labelled recordings (SKAB) in local, federated and
centralized modes, through the edge code (see docs/evaluation.md)."""
