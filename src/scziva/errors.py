"""Errors raised for bad user input.

Every function that reads user data raises :class:`InputError` with one sentence that
names the offending file, key or value; the command-line tools turn it into one line on
stderr and a non-zero exit (never a traceback).
"""


class InputError(ValueError):
    """The user's input cannot be used as given (message says what and where)."""


class OutputError(InputError):
    """An output could not be written where the user asked (a folder in the way, a full
    disk, no permission); the message names the path. A subclass of InputError so that
    every command line reports it on one line too."""
