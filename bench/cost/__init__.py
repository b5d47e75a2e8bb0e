"""bench.cost."""
