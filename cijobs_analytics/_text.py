"""Counts in words for messages: ``1 job``, ``2 jobs``, ``1 retry``, ``3 retries``."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` followed by ``noun`` in the number the count needs.

    Args:
        count: how many.
        noun: the singular (``"job"``).
        nouns: the plural when it is not ``noun + "s"`` (``"retries"``).

    Example:
        >>> plural(1, "partition"), plural(0, "job"), plural(2, "retry", "retries")
        ('1 partition', '0 jobs', '2 retries')
    """
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
