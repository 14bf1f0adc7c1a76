"""The errors for an answer without an error status that is still not the one asked for.

A redirect (never followed), a web page (a captive portal's, a proxy's), an empty body, a body
that is not JSON, or one without a single Server-Sent Event. Each error names the status and
what came instead, with everything the server sent masked of the request's secrets. Only an
empty answer is retried (an ``APIConnectionError``); the others say that another server than
the API answered, which a retry moments later will not change.
"""

from __future__ import annotations

import httpx

from langchain_lunar._exceptions import (
    APIConnectionError,
    APIError,
    LunarError,
    MalformedResponseError,
)
from langchain_lunar._secrets import Secrets, quote, redact

# Media types of a web page: never an API's answer, nor an event stream.
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHECK_BASE_URL = "check base_url, and whether a proxy or a captive portal answered instead"


def is_redirect(response: httpx.Response) -> bool:
    """Whether the answer is a redirect (3xx), which ChatLunar never follows."""
    return 300 <= response.status_code < 400


def is_page(response: httpx.Response) -> bool:
    """Whether the answer says it is a web page, such as a captive portal's login page."""
    return _media_type(response) in _PAGE_TYPES


def redirect_error(response: httpx.Response, secrets: Secrets) -> APIError:
    """The error for a redirect: not followed, so that the key never goes to another address."""
    location = response.headers.get("location")
    where = f"to {quote(location, secrets)}" if location else "without a Location"
    request_id = response.headers.get("x-request-id")
    return APIError(
        f"The server answered with a redirect {where} (HTTP {response.status_code}), which "
        "ChatLunar does not follow: a redirect would take the API key to another address. "
        "If the API has moved, set base_url to its new address.",
        status_code=response.status_code,
        request_id=redact(request_id, secrets) if request_id else None,
    )


def page_error(response: httpx.Response, secrets: Secrets, wanted: str) -> MalformedResponseError:
    """The error for a web page answered instead of ``wanted``; the page is not read."""
    return MalformedResponseError(
        f"The server answered with a web page ({_described(response, secrets)}) instead of "
        f"{wanted}: {_CHECK_BASE_URL}."
    )


def empty_answer_error(response: httpx.Response, secrets: Secrets) -> APIConnectionError:
    """The error for an answer with an empty body.

    A connection error, so it is retried: nothing was generated, so a retry costs little, and
    an empty body says nothing of a wrong endpoint, as a gateway that lost its upstream
    connection before the first byte may send it.
    """
    return APIConnectionError(
        f"The server answered with an empty body ({_described(response, secrets)}): "
        "no answer at all."
    )


def not_json_error(response: httpx.Response, secrets: Secrets) -> MalformedResponseError:
    """The error for an answer to a non-streaming request whose body is not JSON."""
    return MalformedResponseError(
        f"The server's answer is not JSON ({_described(response, secrets)}): {_CHECK_BASE_URL}. "
        f"It begins: {quote(response.text, secrets)}"
    )


def no_events_error(response: httpx.Response, secrets: Secrets) -> LunarError:
    """The error for a stream's body that ended without a single data event.

    Empty, or under ``text/event-stream`` (say only comments), is a connection error, retried:
    the server speaks the protocol and gave up before the answer (an empty body, as above;
    comments alone are what a gateway sends while waiting for a model that then failed).
    Anything else is not an event stream at all.
    """
    if response.num_bytes_downloaded == 0:
        return empty_answer_error(response, secrets)
    if _media_type(response) == "text/event-stream":
        return APIConnectionError(
            f"The stream ended without a single data event ({_described(response, secrets)}, "
            f"{response.num_bytes_downloaded} bytes): no answer at all."
        )
    return MalformedResponseError(
        f"The server answered a streaming request with {response.num_bytes_downloaded} bytes "
        f"without a single Server-Sent Event ({_described(response, secrets)}): "
        f"{_CHECK_BASE_URL}."
    )


def too_large_error(what: str, limit: int) -> MalformedResponseError:
    """The error for ``what`` (an event, an answer) passing ``max_event_bytes``, ``limit``."""
    return MalformedResponseError(
        f"{what} passed max_event_bytes={limit} ({limit / 2**20:.4g} MiB, decompressed) "
        "before its end; it was not read further and the connection was closed. If the "
        "server's answers are really this large, raise max_event_bytes "
        "(ChatLunar(..., max_event_bytes=...), or per call)."
    )


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower()


def _described(response: httpx.Response, secrets: Secrets) -> str:
    """``HTTP 200, content-type 'text/html'``: the status and what the body says it is."""
    content_type = response.headers.get("content-type")
    if not content_type:
        return f"HTTP {response.status_code}, no content-type"
    return f"HTTP {response.status_code}, content-type {quote(content_type, secrets, 100)}"
