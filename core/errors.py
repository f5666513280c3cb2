"""User-facing failures.

Every mistake a user can make (a bad path, a bad file, the wrong model for an index) raises one
of these with a message that names the file or field and says what to do. They are caught once,
at the CLI or HTTP edge, and shown as one line — never a traceback. Anything else is a bug.
"""


class XlsearchError(Exception):
    """Base class: a failure the user can fix. `exit_code` is what the CLI returns."""

    exit_code = 1


class InputError(XlsearchError):
    """A path, argument or input line is wrong (missing file, empty query, bad JSON line)."""

    exit_code = 2


class FileSkipped(XlsearchError):
    """One file cannot be indexed (binary, empty, undecodable, malformed row).

    Not fatal: the indexer records the reason in its summary and carries on with other files.
    """


class ModelError(XlsearchError):
    """A model folder is missing, unreadable or not a sentence-transformers/transformers model."""


class IndexMismatchError(XlsearchError):
    """The index was built with another model; its vectors would be meaningless with this one."""


class IndexCorruptError(XlsearchError):
    """The index files cannot be read and cannot be repaired from what is stored."""


class VectorStoreError(XlsearchError):
    """The index's vector store (a Milvus server, a Milvus Lite folder) cannot be reached or used."""


class IndexBusyError(XlsearchError):
    """Another `xlsearch index` run holds the index's write lock."""

    exit_code = 3


class StorageFullError(XlsearchError):
    """No room to write: the disk is full, the quota is used up, or a file hit `ulimit -f`.

    Raised by the store (storage/failures.py: `no_room`), which knows the index folder to name.
    Batches committed before it stay in the index; a run that failed can simply be repeated.
    """

    exit_code = 4


class NotEnoughMemoryError(XlsearchError):
    """Embedding a batch needed more memory than the machine (or `ulimit -v`) allows."""

    exit_code = 5


class WorkerError(XlsearchError):
    """A worker of a distributed index run (a Ray actor or node) died or failed on a batch.

    Batches committed before it stay in the index; once the cause is fixed the run can simply be
    repeated, and files already committed are not embedded again.
    """
