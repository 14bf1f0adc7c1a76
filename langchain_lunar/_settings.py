"""One call's settings: ChatLunar's fields, overridden by ``.bind()`` and per-call keyword
arguments, checked and resolved into the request, the retry settings and the models to ask.

``.bind(**kwargs)`` and ``llm.invoke(..., **kwargs)`` reach the model the same way, as the
keyword arguments of one call, so this is the only place that reads them. A keyword argument
that names a field is validated exactly as the field is (the same pydantic type, constraints
and validators), so a bad value is a ``ValueError`` naming the setting before any request is
sent; one that names no field goes into the request body as it is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import httpx
from langchain_core.messages import BaseMessage
from pydantic import ConfigDict, SecretStr, TypeAdapter, ValidationError

from langchain_lunar._body_reads import ACCEPT_ENCODING
from langchain_lunar._cooldowns import CooldownScope, cooldown_scope
from langchain_lunar._messages import ReturnedReasoning, to_lunar_messages
from langchain_lunar._retry import RetrySettings
from langchain_lunar._secrets import MASK, MaskedHeaders, masked_headers, secrets_of
from langchain_lunar._transport import CompletionRequest
from langchain_lunar._version import __version__

if TYPE_CHECKING:
    from langchain_core.rate_limiters import BaseRateLimiter

    from langchain_lunar.chat_models import ChatLunar

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

BODY_FIELDS = (
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
)
"""Fields sent in the request body, when set."""

RETRY_FIELDS = (
    "max_retries",
    "max_retry_wait",
    "backoff_base",
    "backoff_max",
    "backoff_jitter",
    "max_cooldown",
)

CALL_SETTINGS = frozenset(
    {
        "api_key",
        "base_url",
        "timeout",
        "stream_chunk_timeout",
        "max_event_bytes",
        "first_chunk_timeout",
        "default_headers",
        "stream_usage",
        "model_kwargs",
        "fallbacks",
        *RETRY_FIELDS,
    }
)
"""Fields that shape a call without being body fields; each may also be given per call."""

# Flags LangChain itself passes down; they are not request settings.
LANGCHAIN_KWARGS = frozenset(
    {"stream", "streaming", "ls_structured_output_format", "structured_output_format"}
)

_PER_CALL_FIELDS = frozenset(BODY_FIELDS) | CALL_SETTINGS
_SECRET_SETTINGS = frozenset({"api_key", "default_headers"})


class ResolvedCall(NamedTuple):
    """What one call sends, and how hard it tries."""

    request: CompletionRequest
    retry: RetrySettings
    models: list[str]
    """The model of the request, then its fallbacks."""
    cooldowns: CooldownScope | None = None
    """The shared cooldowns of this call's ``base_url`` and key; None when they are off."""
    rate_limiter: BaseRateLimiter | None = None
    """Takes a token for each request after the first (langchain-core takes the first)."""


def resolve_call(
    llm: ChatLunar,
    messages: list[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    *,
    stream: bool,
) -> ResolvedCall:
    """The request, retry settings and models of one call of ``llm``.

    Raises ``ValueError`` for a per-call value its field would refuse, before any request.
    """
    call = checked_call_kwargs(type(llm).model_fields, kwargs)
    settings = {name: call.pop(name) for name in CALL_SETTINGS & call.keys()}
    if stop is not None:
        call["stop"] = _checked(type(llm).model_fields, "stop", stop)

    body: dict[str, Any] = {}
    for name in BODY_FIELDS:
        value = getattr(llm, name)
        if value is not None:
            body[name] = value
    body.update(llm.model_kwargs)
    body.update(settings.get("model_kwargs") or {})
    body.update(call)
    if body.get("tools") == []:
        # No tools: servers that validate the field (OpenAI's, DeepSeek's) refuse an empty list,
        # which create_agent binds when it asks for native structured output and has no tools.
        del body["tools"]
    if body.get("n", 1) != 1:
        raise ValueError(f"ChatLunar asks for one answer per request; remove n={body['n']!r}.")
    reasoning = ReturnedReasoning.of(messages, to_lunar_messages(messages))
    body["messages"] = reasoning.messages_for(body["model"])
    if stream:
        body["stream"] = True
        if settings.get("stream_usage", llm.stream_usage):
            body["stream_options"] = {"include_usage": True}

    api_key = settings.get("api_key", llm.api_key)
    secret = api_key.get_secret_value() if api_key is not None else None
    # Lower-case names, so that a header of the user's replaces ours whatever its case
    # (as in the openai SDK, their headers win, the auth headers included).
    headers = {
        "user-agent": f"langchain-lunar/{__version__}",
        "accept": "text/event-stream" if stream else "application/json",
        # Only what _body_reads decompresses in bounded steps (httpx would also offer zstd).
        "accept-encoding": ACCEPT_ENCODING,
    }
    if secret:
        headers["authorization"] = f"Bearer {secret}"
        headers["x-api-key"] = secret
    for extra in (llm.default_headers, settings.get("default_headers")):
        if extra:
            headers.update({name.lower(): value for name, value in extra.items()})
    base_url: str = settings.get("base_url", llm.base_url)
    timeout = settings.get("timeout", llm.timeout)
    chunk_timeout = settings.get("stream_chunk_timeout", llm.stream_chunk_timeout)
    first_timeout = settings.get("first_chunk_timeout", llm.first_chunk_timeout)
    request = CompletionRequest(
        url=f"{base_url}/chat/completions",
        headers=headers,
        body=body,
        timeout=as_timeout(timeout),
        model=body["model"],
        secrets=secrets_of(secret, headers),
        returned_reasoning=reasoning if reasoning.returned else None,
        max_event_bytes=settings.get("max_event_bytes", llm.max_event_bytes),
        # 0 turns them off too, as None cannot per call (None there means the model's setting).
        stream_chunk_timeout=_bound(chunk_timeout),
        first_chunk_timeout=_bound(first_timeout),
    )
    retry = RetrySettings(**{name: settings.get(name, getattr(llm, name)) for name in RETRY_FIELDS})
    store = llm.cooldowns
    return ResolvedCall(
        request,
        retry,
        [request.model, *settings.get("fallbacks", llm.fallbacks)],
        cooldown_scope(store, base_url, headers) if store is not None else None,
        llm.rate_limiter,
    )


def _bound(seconds: float | None) -> float | None:
    """A timeout setting as the transport takes it: None for no bound (None, 0 or inf)."""
    return seconds if seconds and seconds < math.inf else None


def checked_call_kwargs(fields: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a call that shape the request, each field's value validated.

    LangChain's own flags and None values (meaning: the model's setting) are left out.
    """
    checked: dict[str, Any] = {}
    for name, value in kwargs.items():
        if value is None or name in LANGCHAIN_KWARGS:
            continue
        if name in _PER_CALL_FIELDS:
            value = _checked(fields, name, value)
        elif name in fields:
            raise ValueError(
                f"{name} is a setting of the model, not of one call: pass it to "
                f"ChatLunar(..., {name}=...) instead."
            )
        checked[name] = value
    return checked


def _checked(fields: Mapping[str, Any], name: str, value: Any) -> Any:
    try:
        return _adapter(fields[name])(value)
    except ValidationError as error:
        problems = "; ".join(
            problem["msg"] for problem in error.errors(include_url=False, include_input=False)
        )
        shown = "" if name in _SECRET_SETTINGS else f"={value!r}"
        raise ValueError(
            f"Invalid per-call setting {name}{shown}: {problems}. It takes what "
            f"ChatLunar(..., {name}=...) takes."
        ) from None


@functools.cache
def _adapter(field: Any) -> Any:
    """A validator of ``field``'s annotation with its constraints and validators."""
    metadata = field.metadata
    parameters = (field.annotation, *metadata)
    annotated: Any = Annotated[parameters] if metadata else field.annotation
    config = ConfigDict(arbitrary_types_allowed=True)  # httpx.Timeout
    return TypeAdapter(annotated, config=config).validate_python


def traced_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A call's keyword arguments as callbacks and traces may see them: no key, and secret
    header values masked."""
    traced = {name: value for name, value in kwargs.items() if name != "api_key"}
    headers = traced.get("default_headers")
    if headers is not None:
        traced["default_headers"] = (
            masked_headers(headers) if isinstance(headers, Mapping) else MASK
        )
    return traced


def protected_bind_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``.bind()`` arguments with secrets in types whose ``repr`` hides them."""
    protected = dict(kwargs)
    api_key = protected.get("api_key")
    if isinstance(api_key, str):
        protected["api_key"] = SecretStr(api_key)
    headers = protected.get("default_headers")
    if isinstance(headers, Mapping) and not isinstance(headers, MaskedHeaders):
        protected["default_headers"] = MaskedHeaders(headers)
    return protected


def as_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    """An ``httpx.Timeout`` for the ``timeout`` setting; None means the defaults."""
    if timeout is None:
        return DEFAULT_TIMEOUT
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
