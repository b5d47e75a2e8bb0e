"""bench.blocks."""
