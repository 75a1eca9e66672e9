"""Detectors: the contract and registry in base.py, one model per file."""

from tsad.models.base import Detector, Scores, TorchDetector, build_detector, get_detector_class, register

__all__ = ["Detector", "Scores", "TorchDetector", "build_detector", "get_detector_class", "register"]
