"""xlsearch: cross-lingual (English/Chinese) search over a mixed-language collection.

The Python API, as the CLI and the web app use it:

    import xlsearch

    with xlsearch.Index("./idx", create=True) as index:
        index.add(["docs/"])
        hits = index.search("how do layers work", lang="zh")

Importing it loads no model and no torch; the model is loaded when an Index first needs it.
"""

from core.config import ChunkConfig, IndexConfig, SearchConfig
from core.errors import InputError, XlsearchError
from indexer.summary import IndexSummary
from search.searcher import Filters, Hit, SearchRequest
from search.summarize import Summary, SummaryConfig

from .index import Index

__version__ = "0.1.0"
__all__ = [
    "ChunkConfig", "Filters", "Hit", "Index", "IndexConfig", "IndexSummary", "InputError", "SearchConfig",
    "SearchRequest", "Summary", "SummaryConfig", "XlsearchError", "__version__",
]
