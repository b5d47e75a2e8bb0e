"""bench.cli.app."""
