"""xlsearch: cross-lingual (English/Chinese) search over a mixed-language collection.

Data flows one way: files → chunks → vectors → store → search → page. This package holds the
shared core (errors, configuration, encoder, store, CLI); `indexer`, `search`, `training` and
`web` are the steps that use it.
"""

__version__ = "0.1.0"
