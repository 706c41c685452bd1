"""``UserInputError``: the one error type for "what the user gave us is wrong".

Library code raises it (or a subclass) in its own terms, a file, a field, a key, and names the fix. It may carry
``argument``, the parameter at fault in the library's terms (e.g. ``"allowed"``, ``"training"``); only the
command-line layer knows which flag gave that parameter, and every command maps it the same way
(``ropevit_det.cli.common.user_error_message``).
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user: a file, a value or a combination that cannot work. The message says the fix."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument
