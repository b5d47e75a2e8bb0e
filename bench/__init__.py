"""bench: a benchmark harness for spatiotemporal predictive learning (video prediction)."""

__version__ = "0.1.0"
