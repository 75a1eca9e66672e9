"""Metrics, threshold policies and scorers."""
