"""bench.datafiles."""
