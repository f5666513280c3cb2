"""Indexing: files → documents → chunks → vectors → store.

Each step is a module with one job — `discovery` (which files), `filetypes` (what kind),
`encoding` (which charset), `readers` and `markdown` (the text), `chunker` (passages); language
detection and lexical terms come from `core` — and `pipeline` strings them together,
incrementally by content hash, into a `storage.Store`; `summary` is what a run reports.
"""
