"""Error types. Every one of them means "could not verify": the CLI prints its message on one line and exits 2.

Each layer raises its own subclass so callers can tell a broken policy from a lying registry,
and messages always say what was expected, what was found, and what to do next.
"""

from __future__ import annotations


class ImgcheckError(Exception):
    """Base: something could not be checked. Never a pass, never a fail: exit 2."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class PolicyError(ImgcheckError):
    """The policy file is missing, malformed, or names an unknown key / bad value."""


class UsageError(ImgcheckError):
    """The command line asks for something impossible (bad target, bad --report spec)."""


class RegistryError(ImgcheckError):
    """The registry could not be reached, refused us, or answered something we cannot trust."""

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class DigestMismatchError(RegistryError):
    """Content did not hash to the digest it was fetched by: tampering or a broken registry."""


class InputError(ImgcheckError):
    """A file given to imgcheck (a report, an SBOM, a key) is unreadable or malformed."""


class EngineError(ImgcheckError):
    """The container engine is unreachable or failed in a way that says nothing about the image."""
