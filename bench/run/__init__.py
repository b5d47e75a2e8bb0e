"""bench.run."""
