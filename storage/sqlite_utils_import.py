"""sqlite_utils, imported without pandas.

sqlite_utils imports pandas at module load when it is installed (the milvus extra's pymilvus
pulls it in) only to map `pandas.Timestamp` to a column type; this project never writes one.
That import (pandas, and pyarrow under it) cost ~0.3 s of every `xlsearch` start on a 2-core
machine — a fifth of a CLI search. Hiding pandas for the duration of this one import makes
sqlite_utils take its "pandas not installed" path; anything else that imports pandas later
still gets it.
"""

from __future__ import annotations

import sys

if "sqlite_utils" not in sys.modules and "pandas" not in sys.modules:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` raises ImportError
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]
else:
    import sqlite_utils

__all__ = ["sqlite_utils"]
