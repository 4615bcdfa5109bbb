"""The typed confirmation: the one check behind every form, command (`--yes`) and runbook.

A destructive or costly action names a word (a table, a pattern, an index, a pid)
that the operator types again; the command line's `--yes` stands in for typing.
Surrounding spaces are forgiven unless the word itself has them (a glob pattern
may), so what counts as typed is the same on every page and command.
"""

from collections.abc import Sequence


class ConfirmationMismatch(Exception):
    """The operator did not type the confirmation word; the message says what to type."""


def typed_matches(expected: str | Sequence[str], typed: str | None) -> bool:
    """True when `typed` is the confirmation word `expected`, or one of its spellings
    (a table may be typed as the page names it: `payments`, `public.payments`, …)."""
    typed = typed or ""
    for word in [expected] if isinstance(expected, str) else expected:
        if typed == word or (word == word.strip() and typed.strip() == word):
            return True
    return False


def confirmation_error(
    expected: str | Sequence[str], typed: str | None, message: str, *, assume_yes: bool = False
) -> str | None:
    """`message` when the confirmation is missing, None when the action may go on.
    Forms add it as a field error; services raise it (require_typed)."""
    if assume_yes or typed_matches(expected, typed):
        return None
    return message


def require_typed(
    expected: str | Sequence[str],
    typed: str | None,
    message: str,
    *,
    assume_yes: bool = False,
    error: type[Exception] = ConfirmationMismatch,
) -> None:
    """Raise `error(message)` unless `typed` is `expected` or `assume_yes` (the CLI's
    --yes). Changes nothing."""
    if (problem := confirmation_error(expected, typed, message, assume_yes=assume_yes)) is not None:
        raise error(problem)
