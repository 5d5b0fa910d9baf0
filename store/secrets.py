"""Secrets are never stored: credentials in a text become typed placeholders before it is
hashed or tokenized.

``redact(text)`` replaces every secret it recognises by ``<SECRET:kind>`` (``<SECRET:aws>``,
``<SECRET:private_key>``, ...) and counts them per kind. It is built for ingest speed: each
rule names literal anchors (``AKIA``, ``ghp_``, ``-----BEGIN``, ``://``, ...), and a text is
searched for all of those anchors at once first (one Aho-Corasick pass, ``pyahocorasick``; the
few anchors of one or two characters and the lower-cased ones by ``str``'s substring search);
only the rules whose anchors occur run their precise regular expression, and only then are
the candidates checked (a JWT's header must decode to JSON, a generic assignment's value
must be random enough, a URL's password must not be a template). A text with no anchor costs
one pass and a few substring searches (a substring search per anchor, 80 of them, was two
thirds of the scan's time: ``benchmarks/bench_secrets.py``).

The rules cover the shapes detect-secrets knows (its plugins: AWS, GitHub, GitLab, Slack,
Stripe, JWT, private keys, basic-auth URLs, npm, PyPI, SendGrid, Twilio, OpenAI, Azure storage,
Discord, Telegram, Mailchimp, Square, ...) and what it misses (GitHub fine-grained tokens,
Google API keys and OAuth client secrets, Heroku, Hugging Face, Anthropic, Shopify,
DigitalOcean, Databricks, age keys, ...). detect-secrets' own heuristics decide the judgement
calls of the generic rule (templated values, sequential strings, UUIDs) and its Shannon
entropy measures randomness; its full scan (~0.2 MB/s) is not used.

Judgement calls, chosen to keep ordinary code intact:

* Hex digests (git SHAs, lock-file and go.sum hashes, checksums) and UUIDs are left alone:
  they are everywhere in code and identify content, not access. A long hex value assigned to
  a secret-named key (``api_secret = "9f86d0..."``) is still redacted by the generic rule.
* Base64 blobs are left alone unless a rule names their shape or they are assigned to a
  secret-named key (``password=``, ``secret=``, ``token=``, ``api_key=``, ...) with high
  entropy; ``password = "hunter2"`` (low entropy) stays, as do templates such as
  ``"${DB_PASSWORD}"``, ``"{{ token }}"``, ``"<your-token>"`` and ``os.environ[...]``.
* A URL keeps its user and host: only the password goes (``https://bob:<SECRET:url_password>@
  example.com``), unless it is a template (``:${PASS}@``) or a placeholder word.
* A private-key block goes whole, BEGIN to END; one with no END goes to the end of its base64
  lines. Public keys and certificates stay.
* A text that spells a placeholder itself (``<SECRET:aws>``) is left as it is, so redacting
  twice changes nothing (``repofeed redact`` relies on it).

``is_secret_file(path)`` says which files are left out whole (``.env``, keys, credential
stores: ``SECRET_FILES``); ``.env.example`` and its kin (``NOT_SECRET_FILES``) are templates
meant to be committed and are kept (their text is still redacted).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import math
import posixpath
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick
from detect_secrets.filters.heuristic import (
    is_potential_uuid,
    is_sequential_string,
    is_templated_secret,
)

from .config import DEFAULT_SECRET_FILES

# Off only to build a store as it was before redaction existed, for the tests of
# `repofeed redact` (tests/test_redact.py); never a user setting.
ENABLED = True

PLACEHOLDER = "<SECRET:{kind}>"
PLACEHOLDER_RE = re.compile(r"<SECRET:([a-z0-9_]+)>")

# Files left out whole (basename globs, matched case-insensitively).
SECRET_FILES: tuple[str, ...] = DEFAULT_SECRET_FILES  # the configuration's default
# Templates meant to be committed, and public halves of key pairs: kept.
NOT_SECRET_FILES: tuple[str, ...] = (
    ".env.example", ".env.sample", ".env.template", ".env.dist", ".env.defaults",
    "*.example.env", "*.sample.env", "*.pub",
)

# Generic assignments: how random a value must be (Shannon entropy, bits per character).
GENERIC_MIN_ENTROPY = 3.5
GENERIC_MIN_LENGTH = 12

_WORDS_NOT_SECRET = frozenset({
    "password", "passwd", "pass", "secret", "token", "changeme", "example", "dummy", "test",
    "xxx", "none", "null", "true", "false", "redacted", "placeholder", "username", "user",
})


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]      # literal strings one of which every match contains
    group: int = 0                # the part of the match that is the secret
    lower: bool = False           # anchors are searched in the lower-cased text
    # a part of every match that regular expressions find fast (it starts with a literal),
    # searched before the pattern when no anchor can be specific (``.``)
    prefilter: re.Pattern[str] | None = None

    def spans(self, text: str) -> Iterable[tuple[int, int]]:
        if self.prefilter is not None and self.prefilter.search(text) is None:
            return
        for m in self.pattern.finditer(text):
            # A token starts a word. (Checked here, not by a leading ``\b``, which would keep
            # the regex engine from searching for the pattern's literal prefix.)
            at = m.start()
            if at and _WORD.match(text, at - 1) and _WORD.match(text, at):
                continue
            start, end = m.span(self.group)
            if start < end and _plausible(self.kind, m.group(self.group)):
                yield start, end


def _r(kind: str, pattern: str, anchors: Iterable[str], group: int = 0, flags: int = 0,
       lower: bool = False, prefilter: str | None = None) -> Rule:
    return Rule(kind, re.compile(pattern, flags), tuple(anchors), group, lower,
                re.compile(prefilter) if prefilter else None)


_B64URL = r"[A-Za-z0-9_\-]"
_SECRET_WORDS = (r"(?:passw(?:or)?d|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
                 r"auth[_\-]?key|private[_\-]?key|client[_\-]?secret|credentials?|signing[_\-]?key)")

# A private-key block: BEGIN, lines of base64 or headers (``Proc-Type: ...``) separated by
# newlines or by ``\n`` escapes (a key inside a JSON or a string literal), and END if present.
_PEM_NL = r"(?:(?:[ \t]*(?:\r?\n|(?:\\r)?\\n))+[ \t]*|[ ])"
_PEM_LINE = r"(?:[A-Za-z0-9+/=]+|[A-Za-z][A-Za-z\-]*:[^\r\n\\]*)"
_PEM = (r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:" + _PEM_NL + _PEM_LINE + r")*"
        r"(?:" + _PEM_NL + r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)?")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/]{16}")

# Order matters only for overlaps: an earlier rule wins a tie at the same start.
RULES: tuple[Rule, ...] = (
    _r("private_key", _PEM, ["PRIVATE KEY"]),
    _r("aws", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])",
       ["AKIA", "ASIA", "ABIA", "ACCA", "A3T"]),
    _r("aws_secret",
       r"(?i)aws[\w.\-]{0,30}?(?:secret|private)[\w.\-]{0,20}[\"']?\s*(?::=|=>|=|:)\s*"
       r"[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
       ["aws"], group=1, lower=True),
    _r("github", r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b",
       ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
    _r("github", r"github_pat_[A-Za-z0-9_]{60,255}\b", ["github_pat_"]),
    _r("gitlab", r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|gloas)-"
       r"[A-Za-z0-9_\-]{20,64}(?![\w\-])",
       ["glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "glimt-", "glptt-", "gloas-"]),
    _r("gitlab", r"GR1348941[A-Za-z0-9_\-]{20,50}(?![\w\-])", ["GR1348941"]),
    _r("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows)/"
       r"T[A-Za-z0-9_]+/[AB][A-Za-z0-9_]+/[A-Za-z0-9_]+", ["hooks.slack.com"]),
    _r("slack", r"xox[abposre]-(?:[0-9]+-)+[A-Za-z0-9\-]{8,}", ["xox"]),
    _r("slack", r"xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-f0-9]{32,}", ["xapp-"]),
    _r("stripe", r"(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{24,247}\b", ["k_live_", "k_test_"]),
    _r("stripe", r"whsec_[0-9a-zA-Z]{32,}\b", ["whsec_"]),
    _r("google_api", r"AIza[0-9A-Za-z_\-]{35}(?![\w\-])", ["AIza"]),
    _r("google_oauth", r"GOCSPX-[0-9A-Za-z_\-]{28}(?![\w\-])", ["GOCSPX-"]),
    _r("google_oauth", r"ya29\.[0-9A-Za-z_\-]{30,}", ["ya29."]),
    _r("jwt", r"eyJ[A-Za-z0-9_\-]{8,}={0,2}\.eyJ[A-Za-z0-9_\-]{8,}={0,2}\.[A-Za-z0-9_\-]{8,}"
       r"={0,2}", ["eyJ"]),
    _r("npm", r"npm_[A-Za-z0-9]{36}\b", ["npm_"]),
    _r("npm", r"_authToken\s*=\s*[\"']?([A-Za-z0-9_\-.]{20,})", ["_authToken"], group=1),
    _r("pypi", r"pypi-AgE[A-Za-z0-9_\-]{50,}", ["pypi-AgE"]),
    _r("sendgrid", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b", ["SG."]),
    _r("twilio", r"(?:AC|SK)[0-9a-f]{32}\b", ["AC", "SK"]),
    _r("openai", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}",
       ["T3BlbkFJ"]),
    _r("openai", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}", ["sk-proj-", "sk-svcacct-",
                                                                     "sk-admin-"]),
    _r("anthropic", r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_\-]{80,}", ["sk-ant-"]),
    _r("azure_storage", r"AccountKey=([A-Za-z0-9+/]{86}==)", ["AccountKey="], group=1),
    _r("azure_storage", r"[?&]sig=([A-Za-z0-9%+/]{40,}(?:%3D|=){0,2})", ["sig="], group=1),
    _r("discord", r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}\b",
       ["."], prefilter=r"\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27}"),
    _r("discord", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/"
       r"[A-Za-z0-9_\-]{60,}", ["discord"]),
    _r("telegram", r"[0-9]{8,10}:AA[0-9A-Za-z_\-]{33}\b", [":AA"]),
    _r("mailchimp", r"[0-9a-f]{32}-us[0-9]{1,2}\b", ["-us"]),
    _r("square", r"sq0(?:csp|atp|idp)-[0-9A-Za-z_\-]{22,43}\b", ["sq0"]),
    _r("square", r"EAAA[A-Za-z0-9_\-]{60}\b", ["EAAA"]),
    _r("heroku", r"HRKU-[A-Za-z0-9_\-]{60}\b", ["HRKU-"]),
    _r("heroku", r"(?i)heroku[\w.\-]{0,30}(?:key|token|secret)[\w.\-]{0,10}[\"']?\s*(?::=|=>|=|:)"
       r"\s*[\"']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
       ["heroku"], group=1, lower=True),
    _r("huggingface", r"hf_[A-Za-z]{34}\b", ["hf_"]),
    _r("shopify", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", ["shp"]),
    _r("digitalocean", r"do[opr]_v1_[a-f0-9]{64}\b", ["_v1_"]),
    _r("databricks", r"dapi[a-f0-9]{32}(?:-[0-9])?\b", ["dapi"]),
    _r("age", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b", ["AGE-SECRET-KEY"]),
    _r("url_password", r"://[^\s:/@\"'<>]{1,64}:([^\s/@\"'<>]{3,128})@[A-Za-z0-9\[]", ["://"],
       group=1),
    _r("generic", _SECRET_WORDS, ["pass", "pwd", "secret", "token", "key", "credential"],
       lower=True),
)
KINDS = frozenset(rule.kind for rule in RULES)

# The generic rule: a secret-named key (found in the lower-cased text), then an assignment
# whose value (one of two named groups: quoted or not) is checked by ``_generic_ok``.
_GENERIC = RULES[-1]
_ASSIGNMENT = re.compile(
    r"[\w.\-]{0,30}[\"']?\]?\s{0,4}(?::=|=>|=|:)\s{0,4}"
    r"(?:(?P<q>[\"'`])(?P<v>[^\"'`\s\\]{" + str(GENERIC_MIN_LENGTH) + r",256})(?P=q)"
    r"|(?P<u>[^\s\"'`,;)(\[\]{}<>#]{" + str(GENERIC_MIN_LENGTH + 4) + r",256}))")
_WORD = re.compile(r"\w")


_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:\.|::)[A-Za-z_][A-Za-z0-9_]*)+"
                        r"|[\w.\-]*/[\w.\-/]*\.[A-Za-z]\w{0,5}"
                        r"|[A-Za-z]+(?:[\-_][A-Za-z]+)+[\-_]?[0-9]{1,6}")  # fixture-token-123


def _entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _jwt_ok(token: str) -> bool:
    """A JWT's header and payload are base64url JSON."""
    for part in token.split(".")[:2]:
        try:
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except (binascii.Error, ValueError):
            return False
    return True


def _generic_ok(value: str) -> bool:
    """Is a value assigned to a secret-named key random enough to be a credential?"""
    if value.startswith("<SECRET:") or is_templated_secret(value) or \
            value.startswith(("$", "%(", "{{", "process.env", "os.environ", "ENV[")):
        return False
    if value.lower() in _WORDS_NOT_SECRET or is_sequential_string(value) or \
            is_potential_uuid(value):
        return False
    if not any(ch.isdigit() for ch in value) or not any(ch.isalpha() for ch in value):
        return False   # a word, an identifier, a number: random credentials mix both
    if _NAME_LIKE.fullmatch(value) or "://" in value:
        return False   # a dotted name (``settings.SECRET_KEY``), a path with an extension
    return _entropy(value) >= GENERIC_MIN_ENTROPY


def _url_password_ok(value: str) -> bool:
    return not (value.startswith("<SECRET:") or is_templated_secret(value)
                or value.startswith(("$", "%", "{")) or value.lower() in _WORDS_NOT_SECRET
                or set(value) <= {"*", "x", "X", "."})


def _plausible(kind: str, value: str) -> bool:
    if kind == "private_key":
        return _PEM_BODY.search(value, value.index("-----", 5) + 5) is not None
    if kind == "jwt":
        return _jwt_ok(value)
    if kind == "url_password":
        return _url_password_ok(value)
    if kind == "discord":
        return value.startswith("https://") or _entropy(value) >= 4.0 and \
            sum(ch.isdigit() for ch in value) >= 3
    if kind in ("twilio", "mailchimp", "databricks"):
        return _entropy(value) >= 3.0
    return True


def _generic_spans(text: str, lowered: str) -> Iterable[tuple[int, int]]:
    if len(lowered) != len(text):  # lower-casing changed the length (rare characters)
        lowered = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    last = 0
    for hit in _GENERIC.pattern.finditer(lowered):
        if hit.start() < last:
            continue
        m = _ASSIGNMENT.match(text, hit.end())
        if m is None:
            continue
        group = "v" if m.group("v") is not None else "u"
        if _generic_ok(m.group(group)):
            last = m.end()
            yield m.span(group)


_SHORT_ANCHOR = 2  # anchors this short occur everywhere: searched alone, not by the automaton


@lru_cache(maxsize=1)
def _anchors() -> tuple[ahocorasick.Automaton, tuple[tuple[int, tuple[str, ...]], ...]]:
    """The anchors of the case-sensitive rules: an automaton of those longer than
    ``_SHORT_ANCHOR`` characters, each mapped to the numbers of the rules it anchors, and
    (rule number, short anchors) for the rest."""
    rules_of: dict[str, list[int]] = {}
    short: list[tuple[int, tuple[str, ...]]] = []
    for order, rule in enumerate(RULES):
        if rule.lower:
            continue
        for anchor in rule.anchors:
            if len(anchor) > _SHORT_ANCHOR:
                rules_of.setdefault(anchor, []).append(order)
        if any(len(anchor) <= _SHORT_ANCHOR for anchor in rule.anchors):
            short.append((order, tuple(a for a in rule.anchors if len(a) <= _SHORT_ANCHOR)))
    automaton = ahocorasick.Automaton()
    for anchor, orders in rules_of.items():
        automaton.add_word(anchor, tuple(orders))
    automaton.make_automaton()
    return automaton, tuple(short)


def _anchored(text: str) -> set[int]:
    """The numbers of the case-sensitive rules one of whose anchors ``text`` holds."""
    automaton, short = _anchors()
    found: set[int] = set()
    for _end, orders in automaton.iter(text):
        found.update(orders)
    for order, anchors in short:
        if order not in found and any(a in text for a in anchors):
            found.add(order)
    return found


def find_secrets(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every secret in ``text``, sorted, not overlapping."""
    lowered: str | None = None
    anchored = _anchored(text)
    found: list[tuple[int, int, int, str]] = []
    for order, rule in enumerate(RULES):
        if rule.lower:
            if lowered is None:
                lowered = text.lower()
            if not any(a in lowered for a in rule.anchors):
                continue
        elif order not in anchored:
            continue
        haystack = lowered if rule.lower else text
        spans = _generic_spans(text, haystack) if rule is _GENERIC else rule.spans(text)
        found.extend((start, end, order, rule.kind) for start, end in spans)
    if not found:
        return []
    found.sort(key=lambda item: (item[0], item[2], -item[1]))
    out: list[tuple[int, int, str]] = []
    for start, end, _order, kind in found:
        if out and start < out[-1][1]:
            if end > out[-1][1] and kind == out[-1][2]:
                out[-1] = (out[-1][0], end, kind)
            continue
        if PLACEHOLDER_RE.fullmatch(text, start, end):
            continue
        out.append((start, end, kind))
    return out


def redact(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every secret replaced by ``<SECRET:kind>``, and how many per kind."""
    if not ENABLED:
        return text, {}
    spans = find_secrets(text)
    if not spans:
        return text, {}
    parts: list[str] = []
    counts: dict[str, int] = {}
    last = 0
    for start, end, kind in spans:
        parts.append(text[last:start])
        parts.append(PLACEHOLDER.format(kind=kind))
        counts[kind] = counts.get(kind, 0) + 1
        last = end
    parts.append(text[last:])
    return "".join(parts), counts


EDIT_CONTEXT_LINES = 3  # lines around an edit scanned with it (a secret spans a few at most)


def edit_is_clean(data: bytes, written: Iterable[tuple[int, int]],
                  context: int = EDIT_CONTEXT_LINES) -> bool:
    """True when what an edit wrote holds no secret: ``written`` are the byte ranges of the
    new text that git's hunks add, each scanned with ``context`` lines around it. Then a text
    edited from a clean one is clean too, and redaction costs what the edit wrote, not the
    whole file. (A deletion alone writes nothing: joining two clean lines into a secret is
    not looked for.) False means: scan it all."""
    if not ENABLED:
        return True
    regions: list[tuple[int, int]] = []
    for lo, hi in written:
        for _ in range(context):
            if lo <= 0:
                break
            lo = data.rfind(b"\n", 0, lo - 1) + 1
        for _ in range(context):
            end = data.find(b"\n", hi)
            if end < 0:
                hi = len(data)
                break
            hi = end + 1
        if regions and lo <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(hi, regions[-1][1]))
        else:
            regions.append((lo, hi))
    if not regions:
        return True
    text = b"\n".join(data[lo:hi] for lo, hi in regions).decode("utf-8", "replace")
    return not find_secrets(text)


def redact_path(path: str) -> str:
    """A path with any secret in a file or directory name replaced (``redact`` per name)."""
    if not path:
        return path
    return "/".join(redact(part)[0] for part in path.split("/"))


def placeholder_counts(text: str) -> dict[str, int]:
    """How many placeholders of each known kind a (redacted) text holds. A text that spelled
    one itself before redaction (this module's docstring does) counts it too."""
    if not ENABLED or "<SECRET:" not in text:
        return {}
    return dict(Counter(k for k in PLACEHOLDER_RE.findall(text) if k in KINDS))


def is_secret_file(path: str, patterns: Iterable[str] = SECRET_FILES,
                   exceptions: Iterable[str] = NOT_SECRET_FILES) -> bool:
    """Is ``path`` a file of credentials, left out whole (``.env``, ``id_rsa``, ``*.pem``)?"""
    if not ENABLED:
        return False
    name = posixpath.basename(path).lower()
    if any(fnmatch.fnmatchcase(name, glob.lower()) for glob in exceptions):
        return False
    return any(fnmatch.fnmatchcase(name, glob.lower()) for glob in patterns)
