"""Typed errors raised by the library; the CLI turns each into one sentence and an exit code."""


class DocQAError(Exception):
    """Base class of every error docqa raises on purpose."""


class InputError(DocQAError):
    """The question, a path or a setting cannot be used (CLI exit code 2)."""


class NoDocumentsError(InputError):
    """Nothing readable was found in the paths given."""


class ModelLoadError(DocQAError):
    """The reader model or its tokenizer cannot be loaded (CLI exit code 3)."""


class LoaderError(DocQAError):
    """One file could not be read; folders report it as a failed file and go on."""


class IndexBusyError(InputError):
    """Another process is updating the same index and did not finish in time."""


class IndexCorruptError(InputError):
    """The index file is damaged or was written by an incompatible docqa version."""


class IndexWriteError(InputError):
    """The index cannot be written: the disk is full, or it failed while writing."""


class IndexReadOnlyError(IndexWriteError):
    """The index folder or its files are read-only for this user (or on a read-only disk)."""
