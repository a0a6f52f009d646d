"""User-facing errors: one line that says what is wrong and, when possible, what would be right."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["CnnlensError", "closest", "did_you_mean"]


class CnnlensError(ValueError):
    """An error caused by the user's input (a name, a size, a file, a number).

    ``param`` names the API parameter at fault when there is one; the message then starts with that
    name (``"step_size must be a finite number, not nan"``), and the CLI replaces it with the option
    that set it (``--step-size``), so API errors name parameters and CLI errors name options. The CLI
    prints the message on one line and exits with code 2.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def for_option(self, option: str) -> str:
        """The message with its leading parameter name replaced by ``option``."""
        text = str(self)
        if self.param and text.startswith(self.param):
            return option + text[len(self.param) :]
        return text


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` choices closest to ``word`` (difflib ratio, then substring matches)."""
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if len(found) < n:
        low = word.lower()
        found += [c for c in choices if low in c.lower() and c not in found][: n - len(found)]
    return found


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """`` (did you mean: a, b, c?)`` or an empty string."""
    found = closest(word, choices, n)
    return f" (did you mean: {', '.join(found)}?)" if found else ""
