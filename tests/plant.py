"""Realistic fake secrets of many kinds, for the tests that plant them and then look for any
byte of them in a store (tests/test_secrets.py, tests/test_redact.py).

Each is random (seeded) in the shape its issuer uses, so that it is found by shape and could
never be learned as ordinary text; none is a real credential.
"""

from __future__ import annotations

import base64
import json
import random
import string

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def fake_secrets(seed: int = 9) -> dict[str, str]:
    """name -> secret; the name starts with the kind ``redact`` reports (``aws``, ``jwt``...)."""
    rng = random.Random(seed)
    pem_lines = "\n".join(_s(rng, B64, 64) for _ in range(6))
    return {
        "aws": "AKIA" + _s(rng, UPPER, 16),
        "aws_secret": _s(rng, ALNUM + "/+", 40),
        "github": "ghp_" + _s(rng, ALNUM, 36),
        "github_fine": "github_pat_" + _s(rng, ALNUM, 22) + "_" + _s(rng, ALNUM, 59),
        "gitlab": "glpat-" + _s(rng, URLSAFE, 20),
        "slack": "xoxb-" + _s(rng, string.digits, 12) + "-" + _s(rng, string.digits, 13) + "-"
                 + _s(rng, ALNUM, 24),
        "slack_webhook": "https://hooks.slack.com/services/T" + _s(rng, UPPER, 8) + "/B"
                         + _s(rng, UPPER, 10) + "/" + _s(rng, ALNUM, 24),
        "stripe": "sk_live_" + _s(rng, ALNUM, 24),
        "google_api": "AIza" + _s(rng, URLSAFE, 35),
        "google_oauth": "GOCSPX-" + _s(rng, URLSAFE, 28),
        "private_key": "-----BEGIN RSA PRIVATE KEY-----\n" + pem_lines
                       + "\n-----END RSA PRIVATE KEY-----",
        "jwt": _b64url({"alg": "HS256", "typ": "JWT"}) + "."
               + _b64url({"sub": _s(rng, string.digits, 10), "name": "svc"}) + "."
               + _s(rng, URLSAFE, 43),
        "url_password": _s(rng, ALNUM, 18),
        "generic": _s(rng, ALNUM, 32),
        "npm": "npm_" + _s(rng, ALNUM, 36),
        "pypi": "pypi-AgEIcHlwaS5vcmc" + _s(rng, URLSAFE, 80),
        "sendgrid": "SG." + _s(rng, URLSAFE, 22) + "." + _s(rng, URLSAFE, 43),
        "twilio": "SK" + _s(rng, HEX, 32),
        "openai": "sk-proj-" + _s(rng, URLSAFE, 56),
        "anthropic": "sk-ant-api03-" + _s(rng, URLSAFE, 93),
        "azure_storage": _s(rng, ALNUM + "+/", 86) + "==",
        "discord": "https://discord.com/api/webhooks/" + _s(rng, string.digits, 18) + "/"
                   + _s(rng, URLSAFE, 68),
        "telegram": _s(rng, string.digits, 9) + ":AA" + _s(rng, URLSAFE, 33),
        "mailchimp": _s(rng, HEX, 32) + "-us" + str(rng.randint(1, 20)),
        "square": "sq0csp-" + _s(rng, URLSAFE, 43),
        "heroku": "HRKU-" + _s(rng, URLSAFE, 60),
        "huggingface": "hf_" + _s(rng, string.ascii_letters, 34),
        "shopify": "shpat_" + _s(rng, HEX, 32),
        "digitalocean": "dop_v1_" + _s(rng, HEX, 64),
        "databricks": "dapi" + _s(rng, HEX, 32),
        "age": "AGE-SECRET-KEY-1" + _s(rng, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
    }


def in_context(name: str, secret: str) -> str:
    """A line (or block) of code that holds ``secret`` the way real code would."""
    if name == "aws_secret":
        return f'aws_secret_access_key = "{secret}"\n'
    if name == "url_password":
        return f'DATABASE_URL = "postgres://app_user:{secret}@db.internal:5432/app"\n'
    if name == "generic":
        return f'API_TOKEN = "{secret}"\n'
    if name == "azure_storage":
        return (f'CONN = "DefaultEndpointsProtocol=https;AccountName=acct;'
                f'AccountKey={secret};EndpointSuffix=core.windows.net"\n')
    if name == "private_key":
        return f'KEY = """\n{secret}\n"""\n'
    return f'{name.upper()}_CREDENTIAL = "{secret}"\n'


def kind_of(name: str) -> str:
    return {"github_fine": "github", "slack_webhook": "slack_webhook"}.get(name, name)


def pieces(secret: str, size: int = 16, step: int = 8) -> list[str]:
    """Substrings of ``secret`` such that any run of ``size + step`` of its characters holds
    one whole: what a search for "long substrings of it" looks for. The parts of a secret
    every one of its kind shares (``AKIA``, ``-----BEGIN``) are short or not random: a piece
    is taken only from the random part, which starts after the kind's prefix."""
    body = secret
    for prefix in ("-----BEGIN RSA PRIVATE KEY-----\n", "https://hooks.slack.com/services/",
                   "https://discord.com/api/webhooks/", "pypi-AgEIcHlwaS5vcmc"):
        body = body.removeprefix(prefix)
    body = body.replace("\n-----END RSA PRIVATE KEY-----", "")
    if len(body) <= size:
        return [body]
    return [body[i:i + size] for i in range(0, len(body) - size + 1, step)]
