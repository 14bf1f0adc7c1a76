"""Quoting what a server sent, in an error message or a log line: masked first, then cut."""

from __future__ import annotations

from langchain_lunar._secrets import Secrets, redact

QUOTE_CHARS = 300


def quote(text: str | bytes, secrets: Secrets, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of ``text`` with every secret masked, cut to ``limit`` characters (then "...").

    The whole text is masked before the cut: a secret that crosses the cut would be cut in
    two, and the part before the cut, no longer the whole secret, would be shown unmasked.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    masked = redact(text, secrets)
    if len(masked) <= limit:
        return repr(masked)
    return repr(masked[:limit]) + "..."
