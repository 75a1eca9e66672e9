"""Data containers, windows, normalisation and one module per dataset family."""

from tsad.data.series import DatasetSplits, SeriesSet

__all__ = ["DatasetSplits", "SeriesSet"]
