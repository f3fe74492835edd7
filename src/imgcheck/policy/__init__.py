"""The policy: which images, and which rules they must meet (spec/policy.md)."""

from imgcheck.policy.model import ImageSpec, Policy

__all__ = ["ImageSpec", "Policy"]
