"""`fedge demo`: the whole platform on one machine, in one command (see docs/demo.md)."""
