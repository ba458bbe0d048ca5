"""The one error contract of the data layer: every domain error says whether the caller asked for
something that cannot be (bad input, a refusal) or whether an operation that was fine to ask for failed.

The CLI maps the two to its exit codes in one place (cli/context.py ExitCodeGroup): BadInput → 2,
OperationFailed (and anything unexpected) → 1. Each domain's root error derives from one of them and
a subclass may refine it (an unknown backup id is BadInput under BackupError's OperationFailed).
Messages are one line, name what is wrong and are safe to print (no URL password, no key)."""

from __future__ import annotations


class DataLayerError(Exception):
    """Base of every error the data layer raises on purpose."""

    #: what the printed line starts with, e.g. "configuration"; empty when the message says it all
    subject: str = ""

    def one_line(self) -> str:
        """The message as one line (a multi-line message is joined, never cut)."""
        text = " ".join(str(self).split()) or type(self).__name__
        return f"{self.subject}: {text}" if self.subject else text


class BadInput(DataLayerError):
    """Refused before anything changed: a bad value, an unknown name, a missing confirmation."""


class OperationFailed(DataLayerError):
    """A request that was fine to make did not succeed (a server failed, a check found a problem)."""


BAD_INPUT_EXIT = 2
FAILED_EXIT = 1


def exit_code(exc: BaseException) -> int:
    """2 for bad input, 1 for everything else. BadInput is asked first: a refinement such as
    `class UnknownRevision(MigrationError, BadInput)` inherits both, and the refinement wins."""
    return BAD_INPUT_EXIT if isinstance(exc, BadInput) else FAILED_EXIT
