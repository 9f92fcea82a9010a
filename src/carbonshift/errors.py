"""One small hierarchy of errors, so the CLI and the API can turn any of them into a clear message.

Every error that a user can cause names the field, file or key and what is allowed; none carries a secret.
"""

from __future__ import annotations


class CarbonshiftError(Exception):
    """Base of every error carbonshift raises on purpose (anything else is a bug)."""


class UserInputError(CarbonshiftError):
    """Input from a person (a spec, a config file, a CLI option) that cannot be used as given.

    `where` names the field, key or file so the message points at the fix.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


class ConfigError(UserInputError):
    """An invalid setting (environment variable or config file)."""


class UnknownLocationError(UserInputError):
    """A region, zone or location that the catalog does not know."""


class NoDataError(CarbonshiftError):
    """No source, cache or fallback could answer a request (for example a marginal signal with no
    marginal source configured): static averages are never passed off as marginal values."""
