"""The shared training loop for every torch detector."""
