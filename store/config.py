"""Configuration in one place: defaults → repofeed.toml / [tool.repofeed] → environment → flags.

The effective configuration is recorded in the store at ``init`` so that a dataset says how it
was made; commands that run later read it back from the store.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "REPOFEED_"
# LMDB's map is address space: x86-64 gives a process 128 TiB, and an mmap of 2**47 bytes
# fails (ENOMEM) here; below 1 MiB the map would be doubled over and over on the first write.
MIN_MAP_SIZE = 1 << 20
MAX_MAP_SIZE = 1 << 46
MAX_FILE_BYTES_LIMIT = 1 << 31  # a larger text is no training document; and msgpack needs < 2**64


@dataclass(frozen=True)
class Config:
    max_tokens: int = 1024          # window length in tokens
    overlap: int = 768              # tokens shared by consecutive windows (stride 256)
    vocab_size: int = 16384         # requested size when repofeed trains the tokenizer
    max_file_bytes: int = 1 << 20   # larger blobs are skipped as "too_large"
    include_merges: bool = False    # merge commits give evolution records (vs first parent)
    follow: str | None = None       # ref to follow; None: the branch checked out at init
    map_size: int = 1 << 36         # LMDB address space reserved up front (grown on demand)
    watch_worktree: bool = True     # the daemon also takes in uncommitted edits
    gc_grace_seconds: int = 3600    # garbage is kept this long for readers' older indexes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stride(self) -> int:
        return self.max_tokens - self.overlap

    def validate(self) -> Config:
        if self.max_tokens < 16:
            raise ConfigError(f"max_tokens must be at least 16 (got {self.max_tokens})")
        if not 0 <= self.overlap < self.max_tokens:
            raise ConfigError(
                f"overlap must be at least 0 and below max_tokens={self.max_tokens} "
                f"(got {self.overlap})"
            )
        if self.vocab_size < 300:
            raise ConfigError(
                f"vocab_size must be at least 300: 256 byte pieces and the sentinels need "
                f"room (got {self.vocab_size})"
            )
        if self.gc_grace_seconds < 0:
            raise ConfigError(f"gc_grace_seconds must be at least 0 (got {self.gc_grace_seconds})")
        if not 1 <= self.max_file_bytes <= MAX_FILE_BYTES_LIMIT:
            raise ConfigError(
                f"max_file_bytes must be between 1 and {MAX_FILE_BYTES_LIMIT:,} (got "
                f"{self.max_file_bytes:,}); files larger than it are skipped as too_large"
            )
        if not MIN_MAP_SIZE <= self.map_size <= MAX_MAP_SIZE:
            raise ConfigError(
                f"map_size must be between {MIN_MAP_SIZE:,} (1 MiB) and {MAX_MAP_SIZE:,} "
                f"(64 TiB) bytes (got {self.map_size:,}); the default, {1 << 36:,}, suits "
                f"any repository: it is address space, and the store grows on demand"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()

    def with_overrides(self, **overrides: Any) -> Config:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(name: str, raw: Any, kind: type, source: str = "") -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if isinstance(raw, str):
        try:
            if kind is bool:
                if raw.lower() in ("1", "true", "yes", "on"):
                    return True
                if raw.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            return kind(raw)
        except ValueError:
            pass
    raise ConfigError(f"config key {name!r}{source} must be {kind.__name__}, got {raw!r}")


_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_TABLE_LINE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")


def _key_lines(text: str, table: str | None) -> dict[str, int]:
    """The line (1-based) of each key of ``table`` (None: the top level) in TOML text, so that
    an error can say where a bad setting is."""
    lines, current = {}, None
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE_LINE.match(line)
        if header:
            current = header.group(1).replace(" ", "")
            continue
        key = _KEY_LINE.match(line)
        if key and current == table:
            lines.setdefault(key.group(1).replace("-", "_"), number)
    return lines


@dataclass
class _Layer:
    values: dict[str, Any]
    where: dict[str, str]       # key -> where its value was set, as a user would look for it


def _file_layer(repo_root: Path) -> _Layer:
    own = repo_root / "repofeed.toml"
    if own.is_file():
        text = own.read_text("utf-8")
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{own} is not valid TOML: {exc}") from exc
        lines = _key_lines(text, None)
        return _Layer(values, {k.replace("-", "_"): f"{own}:{lines.get(k.replace('-', '_'), 1)}"
                               for k in values})
    pyproject = repo_root / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text("utf-8")
        try:
            values = tomllib.loads(text).get("tool", {}).get("repofeed", {})
        except tomllib.TOMLDecodeError:
            return _Layer({}, {})  # someone else's broken pyproject is not our error to raise
        lines = _key_lines(text, "tool.repofeed")
        return _Layer(values, {
            k.replace("-", "_"): f"{pyproject}:{lines.get(k.replace('-', '_'), 1)} "
                                 f"[tool.repofeed]" for k in values})
    return _Layer({}, {})


def resolve_config(repo_root: Path | None, **flags: Any) -> tuple[Config, dict[str, str]]:
    """The configuration for a repository, later sources overriding earlier ones, and for each
    key where its value came from: ``default``, a file and line (``repofeed.toml:3``), an
    environment variable (``REPOFEED_MAX_TOKENS``) or ``flag``. Errors name the place."""
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    kinds = {"int": int, "bool": bool, "str | None": str}
    known = sorted(k for k in types if k != "extra")
    values: dict[str, Any] = {}
    where = {key: "default" for key in known}
    env_keys = {k[len(ENV_PREFIX):].lower(): k for k in os.environ if k.startswith(ENV_PREFIX)}
    layers = [
        _file_layer(repo_root) if repo_root else _Layer({}, {}),
        _Layer({key: os.environ[name] for key, name in env_keys.items() if key in types},
               {key: name for key, name in env_keys.items() if key in types}),
    ]
    for layer in layers:
        for key, raw in layer.values.items():
            key = key.replace("-", "_")
            place = layer.where.get(key, "")
            if key not in types or key == "extra":
                raise ConfigError(f"{place}: unknown config key {key!r}; known keys: "
                                  + ", ".join(known))
            values[key] = _coerce(key, raw, kinds[str(types[key])], f" (from {place})")
            where[key] = place
    for key, value in flags.items():
        if value is not None:
            values[key] = value
            where[key] = "flag"
    try:
        return Config(**values).validate(), where
    except ConfigError as exc:
        placed = [f"{k} set in {where[k]}" for k in known
                  if re.search(rf"\b{k}\b", str(exc)) and where.get(k, "default") != "default"]
        if not placed:
            raise
        raise ConfigError(f"{exc} ({'; '.join(placed)})") from None


def load_config(repo_root: Path | None, **flags: Any) -> Config:
    """Resolve the configuration for a repository, later sources overriding earlier ones."""
    return resolve_config(repo_root, **flags)[0]
