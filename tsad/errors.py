"""The error a user can fix: printed as one line, never as a traceback."""


class UserError(Exception):
    """A mistake in the user's config or data. The message names the problem and the fix."""
