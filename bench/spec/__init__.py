"""bench.spec."""
