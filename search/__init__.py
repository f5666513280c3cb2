"""Search: a query → ranked hits, one per document, with snippets."""

from .searcher import Hit, search

__all__ = ["Hit", "search"]
