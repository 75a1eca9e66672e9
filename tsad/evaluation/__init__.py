"""Metrics, threshold policies and scorers."""

from tsad.evaluation.range_metrics import range_event_metrics
from tsad.evaluation.vus import vus_metrics

__all__ = ["range_event_metrics", "vus_metrics"]
