"""Indexing: files → documents → chunks → vectors → store.

Each step is a module with one job (`encoding`, `readers`, `language`, `chunker`) and
`pipeline` strings them together, incrementally by content hash.
"""
