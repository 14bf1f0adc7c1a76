"""Keeping secrets out of sight: which headers hold one, and masking them in any text.

A call's secrets are its API key and the values of its secret-looking headers (whether set on
the model or per call). Servers sometimes echo them back in error bodies, so every text that
reaches an error message, a log line or a trace goes through ``redact`` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

MASK = "**********"  # as pydantic shows a SecretStr

_SHORTEST = 6

Secrets = tuple[str, ...]
"""The secret strings of one call, longest first (so a secret holding another masks whole)."""

# Header names that carry credentials by convention; any name containing one of the words
# below is treated as secret too (``X-Goog-Api-Key``, ``OpenAI-Session-Token``, ...).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = ("key", "token", "secret", "auth", "password", "session", "cookie", "credential")


def is_secret_header(name: str) -> bool:
    """Whether a header of this name should be treated as a secret."""
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)


def masked_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` with the value of every secret-looking header replaced by the mask."""
    return {name: MASK if is_secret_header(name) else value for name, value in headers.items()}


def secrets_of(api_key: str | None, headers: Mapping[str, str]) -> Secrets:
    """The secrets of a request: its key, and the values of its secret-looking headers.

    For ``Authorization: Bearer <token>`` the token alone counts too, since a server may
    echo only that.
    """
    found = {api_key} if api_key else set()
    for name, value in headers.items():
        if is_secret_header(name):
            found.add(value)
            scheme, _, credential = value.partition(" ")
            if scheme.isalpha():
                found.add(credential.strip())
    # A value this short is ordinary text too: masking it would garble every message.
    return tuple(sorted((s for s in found if len(s) >= _SHORTEST), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by the mask."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


QUOTE_CHARS = 300


def quote(text: str | bytes, secrets: Secrets, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of what a server sent, for an error message or a log line: every secret
    masked, then cut to ``limit`` characters (then "...").

    In this order: a secret that crosses the cut would be cut in two, and the part before the
    cut, no longer the whole secret, would be shown unmasked.
    """
    # Only the start can be shown: enough of it for a secret that crosses the cut, so that a
    # line of megabytes is not decoded and searched whole.
    shown = limit + max(map(len, secrets), default=0)
    more = len(text) > shown * (4 if isinstance(text, bytes) else 1)
    if isinstance(text, bytes):
        text = text[: shown * 4].decode("utf-8", errors="replace")  # at most 4 bytes a char
    masked = redact(text[:shown], secrets)
    if more or len(masked) > limit:
        return repr(masked[:limit]) + "..."
    return repr(masked)


TOO_DEEP = "(nested too deeply: left out)"
"""What ``redact_deep`` puts in place of a list or object nested deeper than its bound."""


def redact_deep(value: Any, secrets: Iterable[str], *, max_depth: int) -> tuple[Any, bool]:
    """A copy of the parsed JSON ``value`` with every string in it masked, object keys too;
    and whether some part nested deeper than ``max_depth`` was replaced by ``TOO_DEEP``.

    Masks the decoded strings, so a secret spelled with JSON escapes (``"sk-\\u0061bc"``) is
    found too. Walks with a stack, not recursion, so a document nested a thousand levels deep
    costs no Python stack; the copy is at most ``max_depth`` levels deep, so that ``repr``,
    ``json.dumps`` and ``pickle`` of it cannot overflow the stack either.
    """
    secrets = tuple(secrets)
    truncated = False

    def leaf(item: Any) -> Any:
        return redact(item, secrets) if type(item) is str else item

    if type(value) not in (dict, list):
        return leaf(value), False
    root: Any = {} if type(value) is dict else []
    # (source container, its copy, its depth): each container is copied once, its children
    # pushed in turn.
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, copy, depth = stack.pop()
        items = source.items() if type(source) is dict else enumerate(source)
        for key, item in items:
            if type(item) in (dict, list):
                if depth >= max_depth:
                    child: Any = TOO_DEEP
                    truncated = True
                else:
                    child = {} if type(item) is dict else []
                    stack.append((item, child, depth + 1))
            else:
                child = leaf(item)
            if type(copy) is dict:
                copy[leaf(key)] = child
            else:
                copy.append(child)
    return root, truncated


class MaskedHeaders(Mapping[str, str]):
    """Headers given to ``.bind()``: a read-only mapping whose ``repr`` masks secret values.

    Not a ``dict``, so that ``dumpd()`` of the bound runnable, which writes dicts out whole,
    falls back to this ``repr`` too.
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def __getitem__(self, name: str) -> str:
        return self._headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"MaskedHeaders({masked_headers(self._headers)!r})"
