"""The one exception type that reaches users.

Library code raises :class:`LivecamError` with a message that says what is
wrong and what to do about it. The CLI (and only the CLI) turns it into one
line on stderr and exit code 2.
"""

from __future__ import annotations


class LivecamError(Exception):
    """A problem with the user's input: a missing file, an unknown name, ...

    The message is shown to the user as it is, so it must be one line that
    names the problem and the fix.
    """
