"""LangChain chat model for the Lunar LLM API, built for token-by-token streaming.

``ChatLunar`` is the chat model; the rest are its exceptions, cooldown stores, rate limiter and
callback handlers. ``langchain_lunar.testing`` holds a local Lunar-compatible server for
offline tests, and ``langchain_lunar.testing.pytest_plugin`` its opt-in pytest fixture.
"""

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
from langchain_lunar._usage_callback import LunarCallbackHandler, ModelUsage, get_lunar_callback
from langchain_lunar._version import __version__
from langchain_lunar.chat_models import ChatLunar

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
