"""The harness's errors and exit codes: every bad input is one of these, with a message that names
the problem and the fix, and the command line turns it into exit code 2."""

from __future__ import annotations

EXIT_SCORED, EXIT_NOT_SCORED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 3, 2, 130


class UsageError(ValueError):
    """Options that cannot work together, or an organizer command that cannot run here."""


class ContractError(ValueError):
    """A submission does not follow the contract."""


class DataError(ValueError):
    """A data source cannot be used; the message names the file and the fix."""


class RunnerError(RuntimeError):
    """A runner cannot work here (no engine, no image, a bad option)."""


BAD_INPUT = (UsageError, ContractError, DataError, RunnerError)
