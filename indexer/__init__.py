"""Indexing: files → documents → chunks → vectors → store.

Each step is a module with one job (`encoding`, `readers`, `chunker`; language detection and
lexical terms come from `core`) and `pipeline` strings them together, incrementally by content
hash, into a `storage.Store`.
"""
