"""bench.metrics.functional."""
