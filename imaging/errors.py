"""The root of every error a user can fix; the CLI prints its message on one line, no traceback."""


class MMReasonError(Exception):
    """A problem with the input or the configuration. The message says what to do."""
