"""LangChain chat model for the Lunar LLM API, built for token-by-token streaming.

``ChatLunar`` is the chat model; the rest are its exceptions, cooldown stores, rate limiter and
callback handlers. ``langchain_lunar.testing`` holds a local Lunar-compatible server for
offline tests, and ``langchain_lunar.testing.pytest_plugin`` its opt-in pytest fixture.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_lunar._cooldowns import CooldownStore, InProcessCooldowns, RedisCooldowns
from langchain_lunar._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    FirstChunkTimeoutError,
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
from langchain_lunar._version import __version__
from langchain_lunar.chat_models import ChatLunar

if TYPE_CHECKING:
    from langchain_lunar._redis_rate_limiter import RedisRateLimiter
    from langchain_lunar._stream_handler import LunarStreamHandler, StreamEvent
    from langchain_lunar._usage_callback import (
        LunarCallbackHandler,
        ModelUsage,
        get_lunar_callback,
    )

# Imported on first use, so that `from langchain_lunar import ChatLunar` does not pay for them.
_LAZY = {
    "LunarCallbackHandler": "_usage_callback",
    "LunarStreamHandler": "_stream_handler",
    "ModelUsage": "_usage_callback",
    "RedisRateLimiter": "_redis_rate_limiter",
    "StreamEvent": "_stream_handler",
    "get_lunar_callback": "_usage_callback",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_lunar' has no attribute {name!r}")
    value = getattr(import_module(f"langchain_lunar.{module}"), name)
    globals()[name] = value  # later reads find it without calling here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatLunar",
    "ContextLengthExceededError",
    "CooldownStore",
    "FirstChunkTimeoutError",
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
