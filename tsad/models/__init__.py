"""Detectors: the contract and registry in base.py, shared wrappers, one model per file."""
