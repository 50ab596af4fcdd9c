"""Exceptions that describe a user's mistake (bad name, missing file, invalid value).

The CLI turns every :class:`UserError` (and ``ValueError`` from config validation) into one line on
stderr and exit code 2, with no traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base class for errors caused by input the user can fix."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A dataset's files are not where we looked."""


class CorruptFileError(UserError):
    """A file exists but cannot be decoded (names the file)."""


class CheckpointError(UserError):
    """A checkpoint is missing, tampered with, or in a format we refuse to load."""


class BudgetExhausted(UserError):
    """A query budget does not cover the requested images.

    Attributes:
        used: images already charged.
        budget: total images allowed.
        requested: images in the refused request.
    """

    def __init__(self, used: int, budget: int, requested: int) -> None:
        self.used = used
        self.budget = budget
        self.requested = requested
        super().__init__(
            f"query budget exhausted: {used} of {budget} images used, request for {requested} refused "
            f"({max(budget - used, 0)} remaining)"
        )
