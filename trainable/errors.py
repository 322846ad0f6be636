"""LabeltuneError: the one base class of every error meant for the user.

Library code raises a subclass that says what is wrong and where (DatasetError,
ConfigError, CheckpointError, SearchError, ...). The CLI catches LabeltuneError once,
at the top (`search/cli/__init__.py`), and prints `Error: <message>` with exit 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class LabeltuneError(Exception):
    """An error the user can act on: its message is the whole story (no traceback)."""


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an error's text (third-party errors often span many), or its type name."""
    text = str(exc)
    fallback = type(exc).__name__ if isinstance(exc, BaseException) else ""
    return next((line.strip() for line in text.splitlines() if line.strip()), fallback)
