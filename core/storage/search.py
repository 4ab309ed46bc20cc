"""Full-text search input, the same on every backend."""

from __future__ import annotations


def search_words(text: str) -> list[str]:
    """The words of a full-text query: letters and digits only, so nothing is syntax."""
    return "".join(c if c.isalnum() else " " for c in text).split()
