"""Configuration in one place: defaults → repofeed.toml / [tool.repofeed] → environment → flags.

The effective configuration is recorded in the store at ``init`` so that a dataset says how it
was made; commands that run later read it back from the store.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import CLASSES
from .weights import WeightRules

ENV_PREFIX = "REPOFEED_"
# LMDB's map is address space: x86-64 gives a process 128 TiB, and an mmap of 2**47 bytes
# fails (ENOMEM) here; below 1 MiB the map would be doubled over and over on the first write.
MIN_MAP_SIZE = 1 << 20
MAX_MAP_SIZE = 1 << 46
MAX_FILE_BYTES_LIMIT = 1 << 31  # a larger text is no training document; and msgpack needs < 2**64


# When an option takes effect: "ingest" options shape what the daemon writes (changing one
# needs `repofeed init --force`); "read" options are policy that datasets and samplers apply
# when they read (principle 5), so changing one needs no re-ingest.
INGEST, READ = "ingest", "read"
NEAR_DEDUP_MODES = ("downweight", "drop", "off")
CURRICULA = ("off", "epochs", "proportional")
# files of credentials, left out whole (store/secrets.py: is_secret_file; the templates and
# public keys of NOT_SECRET_FILES stay)
DEFAULT_SECRET_FILES: tuple[str, ...] = (
    ".env", ".env.*", "*.env", ".envrc",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.ppk",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", "_netrc", ".pgpass", ".git-credentials", ".htpasswd", ".pypirc",
    "credentials*.json", "credentials", "*service-account*.json", "*.tfvars", "*.tfstate",
)

# the stored variants of each file by default: each entry a transform or a chain of them
DEFAULT_VARIANTS: tuple[str, ...] = ("rename", "decomment", "reformat", "rename+decomment")


def _opt(default: Any, when: str, help: str) -> Any:
    kind = dict if isinstance(default, dict) else list if isinstance(default, (list, tuple)) \
        else None
    if kind is not None:
        value = dict(default) if kind is dict else list(default)
        return field(default_factory=lambda: (dict(value) if kind is dict else list(value)),
                     metadata={"when": when, "help": help})
    return field(default=default, metadata={"when": when, "help": help})


@dataclass(frozen=True)
class Config:
    max_tokens: int = _opt(1024, INGEST, "window length in tokens")
    overlap: int = _opt(768, INGEST, "tokens shared by consecutive windows (stride 256)")
    vocab_size: int = _opt(16384, INGEST, "vocabulary size when repofeed trains the tokenizer")
    max_file_bytes: int = _opt(1 << 20, INGEST, "larger blobs are skipped as too_large")
    include_merges: bool = _opt(False, INGEST, "merge commits give evolution records")
    follow: str | None = _opt(None, INGEST, "ref to follow (default: the branch checked out)")
    map_size: int = _opt(1 << 36, INGEST, "LMDB address space reserved up front")
    watch_worktree: bool = _opt(True, INGEST, "the daemon also takes in uncommitted edits")
    gc_grace_seconds: int = _opt(3600, INGEST, "garbage is kept this long for older readers")
    # -- secrets (never stored: every text is redacted before it is hashed) ---------------
    secret_files: list[str] = _opt(DEFAULT_SECRET_FILES, INGEST,
                                   "file-name globs left out whole, as secret_file")
    # -- weights: sampling probabilities, applied when reading ----------------------------
    weighting: bool = _opt(True, READ, "sample by weight (off: every item weighs 1)")
    weights: dict[str, float] = _opt({}, READ, "glob -> weight rules, first match wins, "
                                     "before the class weights; 0 leaves a path out")
    weight_core: float = _opt(3.0, READ, "core code: src/, lib/, crates/*/src, core")
    weight_test: float = _opt(0.3, READ, "tests and specs")
    weight_docs: float = _opt(0.5, READ, "documentation (.md, .txt, .rst, docs/)")
    weight_config: float = _opt(0.5, READ, "configuration (.json, .yaml, .toml, ...)")
    weight_other: float = _opt(1.0, READ, "everything else")
    exclude_vendored: bool = _opt(True, READ, "leave out vendored and generated paths "
                                  "(linguist-vendored/-generated, vendor/, node_modules/, "
                                  "lock files)")
    # -- filters (StarCoder2's), applied when reading from facts stored per content -------
    filters: bool = _opt(True, READ, "leave out documents and records that fail a filter")
    filter_max_line_length: int = _opt(1000, READ, "longest line allowed")
    filter_max_mean_line_length: float = _opt(100.0, READ, "largest mean line length allowed")
    filter_min_alpha_fraction: float = _opt(0.25, READ, "smallest alphabetic fraction")
    filter_max_lines: int = _opt(100_000, READ, "most lines allowed")
    filter_autogenerated: bool = _opt(True, READ, "leave out files marked auto-generated")
    filter_max_encoded_run: int = _opt(1024, READ, "longest base64/hex run allowed")
    filter_max_encoded_fraction: float = _opt(0.5, READ, "largest share in encoded runs")
    filter_max_data_lines: int = _opt(512, READ, "most lines of a text/JSON/YAML data file")
    # -- deduplication -------------------------------------------------------------------
    dedup_exact: bool = _opt(True, READ, "identical texts at several paths: one document")
    near_dedup: str = _opt("downweight", READ, "near-duplicate clusters (MinHash, Jaccard "
                           ">= 0.7): downweight (1/size each), drop (keep one) or off")
    # -- languages, complexity, curriculum -----------------------------------------------
    parse_timeout_ms: int = _opt(1000, INGEST, "a grammar's time bound per file")
    curriculum: str = _opt("off", READ, "off; epochs (simple to complex, phase by epoch); "
                           "proportional (sampled in proportion to complexity)")
    curriculum_phases: int = _opt(3, READ, "epochs of the curriculum's phases")
    fim_rate: float = _opt(0.5, READ, "share of training windows made fill-in-the-middle")
    fim_spm_rate: float = _opt(0.5, READ, "share of the fill-in-the-middle windows in SPM "
                               "order (the rest PSM)")
    mask_rate: float = _opt(0.0, READ, "BERT-style masking: share of tokens chosen (0: off)")
    mask_labels: str = _opt("masked", READ, "masking's loss: masked (the chosen tokens) or all")
    # -- stored variants and repository context (issue 10) -------------------------------
    variants: list[str] = _opt(DEFAULT_VARIANTS, INGEST, "the stored variants of each code "
                               "file: transforms (rename, decomment, reformat), chained by +")
    variant_timeout_ms: int = _opt(2000, INGEST, "the bound on one variant (parse and "
                                   "formatter)")
    context_documents: bool = _opt(True, INGEST, "store each file after the files it "
                                   "imports, as one context document")
    variant_recipes: list[str] = _opt([], READ, "the stored variants training draws (a "
                                      "subset of variants; empty: all of them)")
    mix: dict[str, float] = _opt({}, READ, "source -> share of the training draws (windows, "
                                 "evolution, variants, context); empty: windows and "
                                 "evolution in natural proportions")
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def options(cls) -> dict[str, dataclasses.Field]:
        """Every option (not ``extra``), by name."""
        return {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}

    @classmethod
    def read_time(cls) -> tuple[str, ...]:
        """The options applied when reading: changing them needs no re-ingest."""
        return tuple(n for n, f in cls.options().items() if f.metadata["when"] == READ)

    def class_weights(self) -> dict[str, float]:
        """The weight of each path class (store/paths.py)."""
        return {cls: getattr(self, f"weight_{cls}") for cls in CLASSES}

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
        self._validate_quality()
        return self

    def _validate_quality(self) -> None:
        for name in ("weight_core", "weight_test", "weight_docs", "weight_config",
                     "weight_other"):
            _at_least(name, getattr(self, name), 0.0)
        try:
            WeightRules(self.weights, self.class_weights())
        except ConfigError as exc:
            raise ConfigError(f"weights: {exc}") from None
        for name in ("filter_max_line_length", "filter_max_lines", "filter_max_encoded_run",
                     "filter_max_data_lines", "curriculum_phases", "parse_timeout_ms"):
            _at_least(name, getattr(self, name), 1)
        _at_least("filter_max_mean_line_length", self.filter_max_mean_line_length, 1.0)
        for name in ("filter_min_alpha_fraction", "filter_max_encoded_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a fraction between 0 and 1 (got {value!r})")
        from .augment import Augment  # (it imports the tokenizers, which import this)
        Augment.from_config(self)         # validates its options
        _one_of("near_dedup", self.near_dedup, NEAR_DEDUP_MODES)
        _one_of("curriculum", self.curriculum, CURRICULA)
        from .variants import check_recipes
        check_recipes(self.variants)
        check_recipes(self.variant_recipes)
        _at_least("variant_timeout_ms", self.variant_timeout_ms, 1)
        check_mix(self.mix or None)
        for glob in self.secret_files:
            if not isinstance(glob, str) or not glob:
                raise ConfigError(f"secret_files must be a list of file-name globs (got "
                                  f"{glob!r} in it)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()

    def with_overrides(self, **overrides: Any) -> Config:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


SOURCE_NAMES = ("windows", "evolution", "variants", "context")
"""The training stream's sources (``train/stream.py``): the snapshot documents' windows, the
evolution records' views, the stored variants' windows and the context documents' windows."""
NATURAL_SOURCES = ("windows", "evolution")
"""The sources of a stream with no mix: each item of each once per epoch."""


def check_sources(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Source names (a mix of natural proportions over them), checked."""
    unknown = [n for n in names if n not in SOURCE_NAMES]
    if unknown or not names:
        raise ConfigError(f"unknown source {unknown[0]!r} in mix: the sources are "
                          f"{', '.join(SOURCE_NAMES)}" if unknown else
                          "a mix names at least one source")
    return tuple(dict.fromkeys(names))


def check_mix(mix: dict[str, float] | None) -> dict[str, float] | None:
    """``mix`` (source name -> ratio) checked, sources at 0 left out; None stays None."""
    if mix is None:
        return None
    if not isinstance(mix, dict) or not mix:
        raise ConfigError(f"mix must be a dict of source name to ratio, got {mix!r}")
    out = {}
    for name, ratio in mix.items():
        if name not in SOURCE_NAMES:
            raise ConfigError(f"unknown source {name!r} in mix: the sources are "
                              f"{', '.join(SOURCE_NAMES)}")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or \
                not math.isfinite(ratio) or ratio < 0:
            raise ConfigError(f"the ratio of {name!r} must be a number >= 0, got {ratio!r}")
        if ratio > 0:
            out[name] = float(ratio)
    if not out:
        raise ConfigError(f"every ratio in mix {mix!r} is 0: give at least one source a "
                          f"positive share")
    return out


def _at_least(name: str, value: Any, low: float) -> None:
    if not value >= low:
        raise ConfigError(f"{name} must be at least {low:g} (got {value!r})")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


_KINDS = {"int": int, "bool": bool, "str | None": str, "str": str, "float": float,
          "list[str]": list, "dict[str, float]": dict}


def _coerce(name: str, raw: Any, kind: type, source: str = "", text: bool = False) -> Any:
    """``raw`` as ``kind``; ``text``: it is an environment variable's string (a list or a
    table then in JSON)."""
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if kind in (list, dict) and isinstance(raw, str) and text:
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigError(f"config key {name!r}{source} must be a JSON "
                              f"{'list' if kind is list else 'object'}, got {raw!r}") from None
    if kind is list and isinstance(raw, list):
        if all(isinstance(x, str) for x in raw):
            return list(raw)
        raise ConfigError(f"config key {name!r}{source} must be a list of strings, got {raw!r}")
    if kind is dict and isinstance(raw, dict):
        bad = [k for k, v in raw.items()
               if isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise ConfigError(f"config key {name!r}{source}: the weight of {bad[0]!r} must be "
                              f"a number, got {raw[bad[0]]!r}")
        return {str(k): float(v) for k, v in raw.items()}
    if isinstance(raw, kind) and not (kind in (int, float) and isinstance(raw, bool)):
        return raw
    if isinstance(raw, str) and kind not in (list, dict):
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
    what = {"list": "a list of strings", "dict": "a table of glob = weight"}.get(
        kind.__name__, kind.__name__)
    raise ConfigError(f"config key {name!r}{source} must be {what}, got {raw!r}")


_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_TABLE_LINE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")


def _key_lines(text: str, table: str | None) -> dict[str, int]:
    """The line (1-based) of each key of ``table`` (None: the top level) in TOML text, so that
    an error can say where a bad setting is; a sub-table (``[weights]``) is at its header."""
    lines, current = {}, None
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE_LINE.match(line)
        if header:
            current = header.group(1).replace(" ", "")
            parent, _, name = current.rpartition(".")
            if (parent or None) == table and name:
                lines.setdefault(name.strip('"').replace("-", "_"), number)
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


def resolve_config(repo_root: Path | None, *, only: frozenset[str] | None = None,
                   **flags: Any) -> tuple[Config, dict[str, str]]:
    """The configuration for a repository, later sources overriding earlier ones, and for each
    key where its value came from: ``default``, a file and line (``repofeed.toml:3``), an
    environment variable (``REPOFEED_MAX_TOKENS``) or ``flag``. Errors name the place.
    ``only``: take these options from the file and the environment, the rest at defaults."""
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    known = sorted(k for k in types if k != "extra")
    values: dict[str, Any] = {}
    where = {key: "default" for key in known}
    env_keys = {k[len(ENV_PREFIX):].lower(): k for k in os.environ if k.startswith(ENV_PREFIX)}
    layers = [
        _file_layer(repo_root) if repo_root else _Layer({}, {}),
        _Layer({key: os.environ[name] for key, name in env_keys.items() if key in types},
               {key: name for key, name in env_keys.items() if key in types}),
    ]
    for number, layer in enumerate(layers):
        for key, raw in layer.values.items():
            key = key.replace("-", "_")
            place = layer.where.get(key, "")
            if key not in types or key == "extra":
                raise ConfigError(f"{place}: unknown config key {key!r}; known keys: "
                                  + ", ".join(known))
            if only is not None and key not in only:
                continue  # a reader leaves the writer's options to the store
            values[key] = _coerce(key, raw, _KINDS[str(types[key])], f" (from {place})",
                                  text=number == 1)
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


def reading_config(stored: Config, repo_root: Path | None, **flags: Any
                   ) -> tuple[Config, dict[str, str]]:
    """The configuration a reader applies to a store: the options that shape what was
    written (``INGEST``) as the store was made with them, and the read-time policy
    (``READ``: weights, filters, dedup, curriculum) as the repository's configuration says
    now (defaults → file → ``REPOFEED_*`` → ``flags``), so that changing a rule needs no
    re-ingest. Also where each value came from (``store`` for the ingest options)."""
    read = frozenset(Config.read_time())
    current, where = resolve_config(repo_root, only=read, **flags)
    merged = {name: getattr(current if name in read else stored, name)
              for name in Config.options()}
    return Config(**merged).validate(), {
        name: where.get(name, "default") if name in read else "store"
        for name in Config.options()}
