"""Redaction of secrets before anything is stored (the function-call log, async passthrough) or handed back."""

import functools
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "apikey",
     "x-account-token", "app-key", "hash", "x-auth-token", "x-access-token"}
)
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "signature", "auth", "hash", "sig", "code")
# Our own credentials have recognisable shapes (ApiKey.generate, Connection.issue_account_token): redacted wherever a
# caller put them, even where we do not know the value (account tokens are stored hashed).
OUR_CREDENTIALS = r"(?<![A-Za-z0-9_-])(?:ak_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}|at_[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])"
# Values taken from secret headers and parameters are redacted elsewhere only if at least this long (a cookie
# `theme=dark` must not blank every "dark" of a body).
HARVESTED_MIN_LENGTH = 8


def _is_secret_param(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_PARAM_WORDS)


def _hex(value: int, width: int) -> str:
    return "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in f"{value:0{width}X}")


# A Redactor is built for every logged call: per character, not per secret, so no secret outlives its call here.
@functools.lru_cache(maxsize=4096)
def _char_pattern(ch: str) -> str:
    """One character of a secret as an upstream may echo it: literal, percent-encoded, `+` for a space, JSON-escaped."""
    forms = [re.escape(ch), "".join("%" + _hex(b, 2) for b in ch.encode())]
    if ch == " ":
        forms.append(r"\+")
    if ch in '/"\\':
        forms.append(re.escape("\\" + ch))
    if ord(ch) < 0x10000:
        forms.append(r"\\u" + _hex(ord(ch), 4))
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Replaces every known secret value wherever it occurs (also URL-encoded or JSON-escaped), our own credentials
    by their shape, plus secret-looking header and query names."""

    def __init__(self, secret_values=(), secret_header_names=()):
        # Longest first, so a value that contains another is replaced whole.
        self.values = sorted({v for v in secret_values if v and len(v) >= 4}, key=len, reverse=True)
        self.header_names = SECRET_HEADERS | {name.lower() for name in secret_header_names}
        self.pattern = re.compile("|".join(["".join(map(_char_pattern, v)) for v in self.values] + [OUR_CREDENTIALS]))
        # The longest text one match can span (a character is at most 12 characters encoded: %XX%XX%XX%XX).
        self.max_match_length = max([12 * len(v) for v in self.values] + [64])

    def text(self, value: str, upto: int | None = None) -> str:
        """`value` with every secret replaced; with `upto`, only its first `upto` characters, a secret that starts
        before `upto` being replaced whole (so a cut never leaves part of a secret)."""
        end = len(value) if upto is None else upto
        out, position = [], 0
        for match in self.pattern.finditer(value):
            if match.start() >= end:
                break
            out += [value[position:match.start()], REDACTED]
            position = match.end()
        if position < end:
            out.append(value[position:end])
        return "".join(out)

    def headers(self, headers) -> dict:
        return {
            name: REDACTED if name.lower() in self.header_names else self.text(str(value)).replace("\x00", "")
            for name, value in dict(headers).items()
        }

    def query(self, pairs) -> list:
        """Query (name, value) pairs, decoded: secret-looking parameters blanked, secrets in the others replaced."""
        return [(k, REDACTED if _is_secret_param(k) else self.text(v)) for k, v in pairs]

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        # Values are redacted decoded, before re-encoding.
        query = self.query(parse_qsl(parts.query, keep_blank_values=True))
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:<>"), "")))

    def json(self, value):
        """A JSON value with every string in it (object keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.json(item) for key, item in value.items()}
        return value


def harvested_secrets(url: str, header_lists, secret_header_names=SECRET_HEADERS) -> list[str]:
    """Secrets a caller or an upstream put in secret headers (Authorization, Cookie, Set-Cookie...) or secret-looking
    query parameters, so that an echo of them in a body or elsewhere is redacted too."""
    found = [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if _is_secret_param(k)]
    for headers in header_lists:
        for name, value in headers:
            name, value = name.lower(), str(value).strip()
            if name not in secret_header_names:
                continue
            if name == "cookie":
                found += [pair.partition("=")[2].strip() for pair in value.split(";")]
            elif name == "set-cookie":
                found.append(value.split(";", 1)[0].partition("=")[2].strip())
            elif value:
                found.append(value.split(None, 1)[-1])  # "Bearer xyz" → "xyz"
            found.append(value)
    return [v for v in found if len(v) >= HARVESTED_MIN_LENGTH]


def capped_text(body: bytes | None, limit: int, redactor: Redactor | None = None) -> tuple[str, bool]:
    """The body as text for the log, cut at `limit` bytes; binary bodies are described, not stored.

    With a `redactor`, secrets are replaced before the cut is made final, so a secret the cut would split is found
    whole and replaced, not left half in the log.
    """
    if not body:
        return "", False
    truncated = len(body) > limit
    head = body[:limit]
    # A cut may split one UTF-8 character (at most 3 bytes of it); text is still text.
    for trim in range(4 if truncated else 1):
        try:
            text = head[: len(head) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if redactor is not None:
            window = body[: limit + redactor.max_match_length].decode("utf-8", errors="ignore") if truncated else text
            redacted = redactor.text(window, upto=len(text)).encode()
            text, truncated = redacted[:limit].decode("utf-8", errors="ignore"), truncated or len(redacted) > limit
        if "\x00" in text:  # not text (and PostgreSQL text columns cannot hold NUL)
            break
        return text, truncated
    return f"<{len(body)} bytes of binary data>", False
