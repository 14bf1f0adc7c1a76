"""LangChain chat model for the Lunar LLM API, built for token-by-token streaming.

Names are imported on first use, so that ``langchain_lunar.testing`` (and its pytest plugin,
which pytest loads in every session where this package is installed) stays cheap to import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_lunar._version import __version__

if TYPE_CHECKING:
    from langchain_lunar._cooldowns import CooldownStore, InProcessCooldowns, RedisCooldowns
    from langchain_lunar._exceptions import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ContextLengthExceededError,
        GatewayTimeoutError,
        LunarError,
        MalformedResponseError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
        ServiceUnavailableError,
        StreamChunkTimeoutError,
        StreamInterruptedError,
        UnprocessableEntityError,
    )
    from langchain_lunar._redis_rate_limiter import RedisRateLimiter
    from langchain_lunar._stream_handler import LunarStreamHandler, StreamEvent
    from langchain_lunar._usage_callback import (
        LunarCallbackHandler,
        ModelUsage,
        get_lunar_callback,
    )
    from langchain_lunar.chat_models import ChatLunar

_EXCEPTIONS = "langchain_lunar._exceptions"
_EXPORTS = {
    "ChatLunar": "langchain_lunar.chat_models",
    "CooldownStore": "langchain_lunar._cooldowns",
    "InProcessCooldowns": "langchain_lunar._cooldowns",
    "RedisCooldowns": "langchain_lunar._cooldowns",
    "LunarStreamHandler": "langchain_lunar._stream_handler",
    "RedisRateLimiter": "langchain_lunar._redis_rate_limiter",
    "StreamEvent": "langchain_lunar._stream_handler",
    "LunarCallbackHandler": "langchain_lunar._usage_callback",
    "ModelUsage": "langchain_lunar._usage_callback",
    "get_lunar_callback": "langchain_lunar._usage_callback",
    "APIConnectionError": _EXCEPTIONS,
    "APIError": _EXCEPTIONS,
    "APITimeoutError": _EXCEPTIONS,
    "AuthenticationError": _EXCEPTIONS,
    "BadRequestError": _EXCEPTIONS,
    "ContextLengthExceededError": _EXCEPTIONS,
    "GatewayTimeoutError": _EXCEPTIONS,
    "LunarError": _EXCEPTIONS,
    "MalformedResponseError": _EXCEPTIONS,
    "NotFoundError": _EXCEPTIONS,
    "PermissionDeniedError": _EXCEPTIONS,
    "RateLimitError": _EXCEPTIONS,
    "ServerError": _EXCEPTIONS,
    "ServiceUnavailableError": _EXCEPTIONS,
    "StreamChunkTimeoutError": _EXCEPTIONS,
    "StreamInterruptedError": _EXCEPTIONS,
    "UnprocessableEntityError": _EXCEPTIONS,
}

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatLunar",
    "ContextLengthExceededError",
    "CooldownStore",
    "GatewayTimeoutError",
    "InProcessCooldowns",
    "LunarCallbackHandler",
    "LunarError",
    "LunarStreamHandler",
    "MalformedResponseError",
    "ModelUsage",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedisCooldowns",
    "RedisRateLimiter",
    "ServerError",
    "ServiceUnavailableError",
    "StreamChunkTimeoutError",
    "StreamEvent",
    "StreamInterruptedError",
    "UnprocessableEntityError",
    "__version__",
    "get_lunar_callback",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_lunar' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
