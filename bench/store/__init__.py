"""bench.store."""
