"""Cloud aggregator: rounds, streaming aggregation strategies, registry (see ARCHITECTURE.md)."""
