"""Every choice and limit a user can pass, defined once.

The CLI's `click.Choice`s, the web app's query validation and the OpenAPI schema, and the
checks in `search` and `storage` all import these, so a new mode or a changed limit cannot
drift between the command line and the HTTP API.
"""

from __future__ import annotations

INDEX_TYPES = ("flat", "flat16", "ivf", "hnsw")  # FAISS index kinds (storage.faiss_files)
LANG_FILTERS = ("any", "en", "zh", "other")  # --lang / ?lang=
LANGS = ("en", "zh", "other")  # what core.language.detect_language returns
MODES = ("dense", "lexical", "hybrid")  # --mode / ?mode=
FILE_TYPES = ("text", "markdown", "html", "jsonl", "csv", "pdf")  # --type / ?type=, what indexer.readers reads
KINDS = ("query", "passage")  # how a text is embedded (prompts differ)
PRECISIONS = ("fp32", "bf16", "int8")  # what an Encoder can run at; "auto" picks one
RUNTIMES = ("auto", "torch", "onnx")  # what runs the encoder (models/encoder.py: load_encoder)

MAX_QUERY_CHARS = 2000  # longer queries are refused (CLI and HTTP alike)
MAX_K = 1000  # hits per request, and the deepest offset
MAX_ID = 2**63 - 1  # document and chunk ids are SQLite integers: a larger one names nothing
