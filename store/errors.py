"""The one error family of repofeed: every message says what was wrong and what to do."""


class RepofeedError(Exception):
    """Base class. The CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class StoreError(RepofeedError):
    """The store is missing, corrupt, of another schema version, or busy."""


class StoreMissing(StoreError):
    pass


class ArrayMissing(StoreError):
    """A token array an index names is gone: garbage collection reclaimed it since."""


class StoreCorrupt(StoreError):
    """The store's files are damaged; it is a cache of git, to be rebuilt."""


class WriterBusy(StoreError):
    """Another process holds the store's writer lock."""


class ConfigError(RepofeedError):
    """A configuration value is invalid."""


class RepoError(RepofeedError):
    """The git repository cannot be used as asked."""


class TokenizerError(RepofeedError):
    """A tokenizer cannot be trained or loaded."""


class TrainError(RepofeedError):
    """A training, evaluation or ablation run cannot go as asked (no data, a model or
    checkpoint that does not match the store, a memory budget it does not fit, no CUDA)."""


class ModelError(TrainError):
    """A model cannot be loaded or does not suit the store (vocabulary, tokenizer, memory)."""
