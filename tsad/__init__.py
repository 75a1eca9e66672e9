"""tsad: config-driven experiments for time-series anomaly detection."""

__version__ = "0.1.0"
