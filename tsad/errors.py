"""Errors the pipeline tells apart: the user's mistake (one line, no traceback) and a diverged training run."""


class UserError(Exception):
    """A mistake in the user's config or data. The message names the problem and the fix."""


class NaNLossError(RuntimeError):
    """Training produced a non-finite loss (the run's status becomes NAN)."""
