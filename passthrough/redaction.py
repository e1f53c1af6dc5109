"""Redaction of secrets before anything is stored in the function-call log."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "apikey",
     "x-account-token", "app-key", "hash", "x-auth-token", "x-access-token"}
)
SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "signature", "auth", "hash", "sig", "code")


class Redactor:
    """Replaces every known secret value wherever it occurs, plus secret-looking header and query names."""

    def __init__(self, secret_values=(), secret_header_names=()):
        # Longest first, so a value that contains another is replaced whole.
        self.values = sorted({v for v in secret_values if v and len(v) >= 4}, key=len, reverse=True)
        self.header_names = SECRET_HEADERS | {name.lower() for name in secret_header_names}

    def text(self, value: str) -> str:
        for secret in self.values:
            value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers) -> dict:
        return {
            name: REDACTED if name.lower() in self.header_names else self.text(str(value))
            for name, value in dict(headers).items()
        }

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        query = [
            (k, REDACTED if any(word in k.lower() for word in SECRET_PARAM_WORDS) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:<>"), "")))


def capped_text(body: bytes | None, limit: int) -> tuple[str, bool]:
    """The body as text for the log, cut at `limit` bytes; binary bodies are described, not stored."""
    if not body:
        return "", False
    truncated = len(body) > limit
    head = body[:limit]
    # A cut may split one UTF-8 character (at most 3 bytes of it); text is still text.
    for trim in range(4 if truncated else 1):
        try:
            return head[: len(head) - trim].decode("utf-8"), truncated
        except UnicodeDecodeError:
            continue
    return f"<{len(body)} bytes of binary data>", False
