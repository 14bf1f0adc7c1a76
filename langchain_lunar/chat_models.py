"""``ChatLunar``: the LangChain chat model for Lunar's OpenAI-compatible chat completions API."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.load.serializable import SerializedConstructor, SerializedNotImplemented
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    model_validator,
)

from langchain_lunar import _refusal_blocks, _transport
from langchain_lunar._clients import ClientPool, PoolKey
from langchain_lunar._cooldowns import CooldownStore, default_cooldowns
from langchain_lunar._events import ChunkEvents, EventAssembler
from langchain_lunar._events import Item as EventItem
from langchain_lunar._media_out import requested_audio_format
from langchain_lunar._profiles import profile_for
from langchain_lunar._responses import PROVIDER
from langchain_lunar._retry import acall_with_retries, call_with_retries
from langchain_lunar._secrets import masked_headers
from langchain_lunar._settings import (
    BODY_FIELDS,
    protected_bind_kwargs,
    resolve_call,
    traced_kwargs,
)
from langchain_lunar._sse import MAX_EVENT_BYTES

if TYPE_CHECKING:
    from langchain_core.language_models import ModelProfile
    from typing_extensions import Self  # typing.Self needs Python 3.11

    from langchain_lunar._tools import StructuredOutputMethod, ToolLike

DEFAULT_BASE_URL = "https://api.lunar-sys.com/v1"

ItemT = TypeVar("ItemT")

_refusal_blocks.register()


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url must be an http:// or https:// URL, such as {DEFAULT_BASE_URL}; "
            f"got {value!r}"
        )
    return value.rstrip("/")


BaseURL = Annotated[str, AfterValidator(_check_base_url)]


def _event_assembly(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    *,
    with_chunks: bool,
) -> _transport.Assembly[EventItem]:
    """The assembler of protocol events for one run: ``message-start`` carries the run's
    message id, as langchain-core's compat bridge gives it."""
    message_id = f"{LC_ID_PREFIX}-{run_manager.run_id}" if run_manager is not None else None

    def assembly(request: _transport.CompletionRequest) -> EventAssembler:
        return EventAssembler(
            request.model,
            message_id=message_id,
            with_chunks=with_chunks,
            secrets=request.secrets,
            failed_attempts=request.failed_attempts,
            audio_format=requested_audio_format(request.body),
            max_event_bytes=request.max_event_bytes,
        )

    return assembly


class ChatLunar(BaseChatModel):
    """Chat model for the Lunar LLM API that streams token by token.

    Setup:
        ``pip install langchain-lunar`` and set ``LUNAR_API_KEY``. Point ``base_url`` (or
        ``LUNAR_BASE_URL``) at any OpenAI-compatible server to use that instead.

    Example:
        ```python
        from langchain_lunar import ChatLunar

        llm = ChatLunar(model="gpt-4o-mini", temperature=0)
        for chunk in llm.stream("Tell me a short story"):
            print(chunk.content, end="", flush=True)
        ```

    Every field that shapes a request can also be passed per call, e.g.
    ``llm.invoke(messages, model="claude-3-haiku", temperature=0.2)`` or through ``.bind()``.
    Unknown per-call keyword arguments (``response_format``, ``tools``, ...) go into the body.

    ``profile`` (langchain-core's ``ModelProfile``: context window, modalities, tool calling,
    structured output) is filled from the models.dev data for known model ids, with or without
    a provider prefix; it is None for an unknown id, and a ``profile=`` given wins.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", protected_namespaces=())

    # A validation alias, not an alias: type checkers then take `model=` (the documented name).
    model: str = Field(validation_alias=AliasChoices("model", "model_name"))
    """Model id, such as ``gpt-4o-mini`` or ``openai/gpt-4o-mini``."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("LUNAR_API_KEY", default=None)
    )
    """API key; read from ``LUNAR_API_KEY`` when not given. Sent as ``Authorization: Bearer``
    and as ``x-api-key``, so both kinds of Lunar-compatible server accept it."""
    base_url: BaseURL = Field(
        default_factory=from_env("LUNAR_BASE_URL", default=DEFAULT_BASE_URL), validate_default=True
    )
    """API root; requests go to ``{base_url}/chat/completions``. Env: ``LUNAR_BASE_URL``."""
    timeout: float | httpx.Timeout | None = None
    """Seconds, or an ``httpx.Timeout``. The read timeout bounds the wait for each next chunk of a
    stream, not the whole answer. None (the default): 10 s to connect, 600 s for each read."""
    stream_chunk_timeout: float | None = Field(default=120.0, ge=0)
    """The longest wait in seconds for the next data event of a stream, once its first has come.
    SSE comments (keep-alives) do not count, though each resets the read timeout; nor does the
    time your code spends with a chunk. A stall before the first chunk has reached you is a
    ``StreamChunkTimeoutError`` (a timeout: retried, then the fallbacks are asked); after it, a
    ``StreamInterruptedError``. The connection is closed either way. None or 0: no limit."""
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, gt=0)
    """The most bytes one event of a stream, a whole non-streamed answer, or an error body may
    take, counted decompressed. 128 MiB by default: a 4096x4096 image in base64 (an image
    model's answer through a gateway) is 30-50 MiB, 85 MiB at worst. Past it the stream or
    answer is refused (``MalformedResponseError``; ``StreamInterruptedError`` once text was
    delivered) without being read further, and the connection is closed."""
    first_chunk_timeout: float | None = Field(default=600.0, ge=0)
    """The longest wait in seconds for the first data event of a stream, from the request on:
    the response headers, and the silence of a model that thinks before its first token
    (minutes, for a reasoning model on a long prompt). SSE comments do not count. Reaching it
    is a ``FirstChunkTimeoutError``: the model is not asked again (its thinking would be paid
    for and lost again), the fallbacks are. The read timeout (``timeout``) bounds this wait too,
    as any read. None or 0: no limit."""
    streaming: bool = False
    """Whether ``invoke`` goes through the stream (so callbacks see every token)."""
    stream_usage: bool = True
    """Whether to ask for usage in streams (``stream_options.include_usage``)."""
    temperature: float | None = None
    max_tokens: int | None = None
    """Sent as ``max_tokens``, which every OpenAI-compatible server understands."""
    top_p: float | None = None
    stop: list[str] | str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra body fields sent with every request."""
    default_headers: dict[str, str] | None = None
    """Extra headers sent with every request."""
    fallbacks: list[str] = Field(default_factory=list)
    """Models to ask, in order, when the model fails with an error that may pass (429, 5xx,
    408, 409, connection errors, timeouts) and its retries are used up. While streaming, only
    until the first chunk has reached the caller."""
    max_retries: int = Field(default=2, ge=0)
    """Retries on each model (so ``1 + max_retries`` attempts per model)."""
    max_retry_wait: float = Field(default=60.0, ge=0)
    """The longest wait the server may ask for (``Retry-After``) that is slept; when it asks
    for longer, the next model is asked at once (or the error raised, if there is none)."""
    backoff_base: float = Field(default=0.5, ge=0)
    """First backoff wait in seconds when the server did not say; doubles with each retry."""
    backoff_max: float = Field(default=8.0, ge=0)
    """Cap on one backoff wait in seconds."""
    backoff_jitter: float = Field(default=0.5, ge=0)
    """Up to this many random seconds added to each backoff wait."""
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """Your own ``httpx.Client`` (proxies, certificates, transports). Default: one of ours."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """Your own ``httpx.AsyncClient``. Default: one of ours per event loop."""
    cooldowns: CooldownStore | None = Field(default_factory=default_cooldowns, exclude=True)
    """Where a model's cooldown is shared: after a 429 or 503 that asks for a wait, every
    ChatLunar using this store skips that model (same ``base_url`` and key) until the wait is
    over. Default: one ``InProcessCooldowns`` for the whole process; ``RedisCooldowns(...)``
    shares them across processes and machines; None turns sharing off."""
    max_cooldown: float = Field(default=300.0, ge=0, allow_inf_nan=False)
    """The longest cooldown in seconds a 429 or 503 records, whatever wait it asks for: a
    ``Retry-After`` of a year (or of 1e308 s) cools the model for this long. The server's own
    word stays in the error's ``retry_after``."""

    # This instance's share of the shared httpx clients (langchain_lunar._clients).
    _clients: ClientPool = PrivateAttr()
    # tenacity's sleeps, None for time.sleep / asyncio.sleep; tests set them to observe the
    # waits without waiting. (A function default would be bound like a method.)
    _sleep: Callable[[float], None] | None = PrivateAttr(default=None)
    _asleep: Callable[[float], Awaitable[None]] | None = PrivateAttr(default=None)

    @field_serializer("timeout")
    def _serialize_timeout(self, timeout: float | httpx.Timeout | None) -> Any:
        return timeout.as_dict() if isinstance(timeout, httpx.Timeout) else timeout

    @field_serializer("default_headers")
    def _serialize_headers(self, headers: dict[str, str] | None) -> Any:
        return masked_headers(headers) if headers else headers

    @model_validator(mode="after")
    def _check_key_and_prepare(self) -> Self:
        if self.api_key is None and self.base_url == DEFAULT_BASE_URL:
            raise ValueError(
                "No Lunar API key: set the LUNAR_API_KEY environment variable or pass "
                "api_key=... (a key is optional only when base_url points at another server)."
            )
        # No field shapes the connections yet; one that does (a proxy) joins the key.
        self._clients = ClientPool(PoolKey())
        return self

    def _resolve_model_profile(self) -> ModelProfile | None:
        # langchain-core's validator calls this when no `profile=` was given.
        return profile_for(self.model)

    @property
    def _llm_type(self) -> str:
        return "lunar-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_lunar", "chat_models"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "LUNAR_API_KEY"}

    def to_json(self) -> SerializedConstructor | SerializedNotImplemented:
        """As langchain-core serializes models, with secret-looking header values masked."""
        serialized = super().to_json()
        kwargs = serialized.get("kwargs")
        if isinstance(kwargs, dict) and kwargs.get("default_headers"):
            kwargs["default_headers"] = masked_headers(kwargs["default_headers"])
        return serialized

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, masked_headers(value) if name == "default_headers" and value else value

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in BODY_FIELDS},
            "base_url": self.base_url,
            "model_kwargs": self.model_kwargs,
            "fallbacks": self.fallbacks,
        }

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        # What the base class returns (asdict() plus stop plus kwargs), built directly: its
        # path enters a warnings-suppressing context on every call, and every call waits for
        # it before the first token. These params reach callbacks and traces: no secrets.
        return {
            **self._identifying_params,
            "_type": self._llm_type,
            "stop": stop,
            **traced_kwargs(kwargs),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Called before the call's settings are checked: a bad per-call value is skipped here
        # and reported by the call itself.
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=model if isinstance(model, str) else self.model,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop or kwargs.get("stop") or self.stop
        if isinstance(stop_sequences, str):
            params["ls_stop"] = [stop_sequences]
        elif isinstance(stop_sequences, (list, tuple)):
            params["ls_stop"] = list(stop_sequences)
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = resolve_call(self, messages, stop, kwargs, stream=False)
        client = self._sync_client()
        request = call.request
        return call_with_retries(
            call,
            lambda model, failed: _transport.complete(client, request.for_model(model, failed)),
            sleep=self._sleep or time.sleep,
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = resolve_call(self, messages, stop, kwargs, stream=False)
        client = self._async_client()
        request = call.request
        return await acall_with_retries(
            call,
            lambda model, failed: _transport.acomplete(client, request.for_model(model, failed)),
            sleep=self._asleep or asyncio.sleep,
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        first, rest = self._open_stream(messages, stop, kwargs, _transport.chunk_assembler)
        try:
            if run_manager is None:
                # `stream()` and `invoke()` fire on_llm_new_token themselves for every chunk.
                yield first
                yield from rest
                return
            # Only langchain-core's compat bridge of the event protocol passes a run manager
            # (for a model without `_stream_chat_model_events`); it fires no token callbacks.
            run_manager.on_llm_new_token(first.text, chunk=first)
            yield first
            for chunk in rest:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            # Close the HTTP response now, also when the caller stops before the end.
            rest.close()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        first, rest = await self._aopen_stream(messages, stop, kwargs, _transport.chunk_assembler)
        try:
            if run_manager is None:
                # `astream()` and `ainvoke()` fire on_llm_new_token themselves for every chunk.
                yield first
                async for chunk in rest:
                    yield chunk
                return
            # Only the compat bridge of the event protocol passes a run manager (see _stream).
            await run_manager.on_llm_new_token(first.text, chunk=first)
            yield first
            async for chunk in rest:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            # Close the HTTP response now, also when the caller stops before the end.
            await rest.aclose()

    def _stream_chat_model_events(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        """The answer as langchain-core's protocol events (langchain-core 1.7.5+ calls this for
        ``stream_events(version="v3")``, LangGraph's v3 events, and ``invoke`` with a v2
        streaming handler), made from the stream without a chunk per token; see ``_events``.

        Retries, fallbacks, timeouts and errors are those of ``_stream``. Token callbacks
        (``on_llm_new_token``) get the same chunks as with ``_stream``, once each.
        """
        tokens = run_manager if run_manager is not None and run_manager.handlers else None
        assembly = _event_assembly(run_manager, with_chunks=tokens is not None)
        first, rest = self._open_stream(messages, stop, kwargs, assembly)
        try:
            for item in itertools.chain((first,), rest):
                if type(item) is dict:  # a text delta's event, when no callback needs a chunk
                    yield item
                    continue
                assert isinstance(item, ChunkEvents)
                if tokens is not None:
                    tokens.on_llm_new_token(item.chunk.text, chunk=item.chunk)
                if item.last:
                    # langchain-core stops asking at `message-finish`: end the HTTP exchange
                    # first (drained, its connection back in the pool), not when this
                    # generator is collected, which may be inside the pool's lock.
                    for _ in rest:
                        pass
                yield from item.events
        finally:
            rest.close()

    async def _astream_chat_model_events(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async twin of ``_stream_chat_model_events``."""
        tokens = run_manager if run_manager is not None and run_manager.handlers else None
        assembly = _event_assembly(run_manager, with_chunks=tokens is not None)
        first, rest = await self._aopen_stream(messages, stop, kwargs, assembly)
        try:
            item = first
            while True:
                if type(item) is dict:  # a text delta's event, when no callback needs a chunk
                    yield item
                else:
                    assert isinstance(item, ChunkEvents)
                    if tokens is not None:
                        await tokens.on_llm_new_token(item.chunk.text, chunk=item.chunk)
                    if item.last:  # end the HTTP exchange first (see the sync twin)
                        async for _ in rest:
                            pass
                    for event in item.events:
                        yield event
                try:
                    item = await rest.__anext__()
                except StopAsyncIteration:
                    return
        finally:
            await rest.aclose()

    def _open_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        assembly: _transport.Assembly[ItemT],
    ) -> tuple[ItemT, Generator[ItemT, None, None]]:
        """The first item of the answer, and a generator of the rest, once an attempt has
        given its first item: until then, a failure is retried, or the next model asked."""
        call = resolve_call(self, messages, stop, kwargs, stream=True)
        client = self._sync_client()
        request = call.request

        def open_stream(
            model: str, failed: tuple[dict[str, Any], ...]
        ) -> tuple[ItemT, Generator[ItemT, None, None]]:
            items = _transport.stream_completion(client, request.for_model(model, failed), assembly)
            return next(items), items

        return call_with_retries(call, open_stream, sleep=self._sleep or time.sleep)

    async def _aopen_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        assembly: _transport.Assembly[ItemT],
    ) -> tuple[ItemT, AsyncGenerator[ItemT, None]]:
        """Async twin of ``_open_stream``."""
        call = resolve_call(self, messages, stop, kwargs, stream=True)
        client = self._async_client()
        request = call.request

        async def open_stream(
            model: str, failed: tuple[dict[str, Any], ...]
        ) -> tuple[ItemT, AsyncGenerator[ItemT, None]]:
            items = _transport.astream_completion(
                client, request.for_model(model, failed), assembly
            )
            return await items.__anext__(), items

        return await acall_with_retries(call, open_stream, sleep=self._asleep or asyncio.sleep)

    if not TYPE_CHECKING:  # type checkers keep the base class's signature, which varies

        def bind(self, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
            """Bind call settings or body fields to every call, as ``llm.invoke(..., **kwargs)``.

            A key or headers given here are kept in types whose ``repr`` hides them, so
            printing the bound runnable shows no credentials.
            """
            return super().bind(**protected_bind_kwargs(kwargs))

    def bind_tools(
        self,
        tools: Sequence[ToolLike],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (functions, pydantic models, TypedDicts, JSON schemas, ``BaseTool``s).

        Args:
            tools: The tools the model may call.
            tool_choice: A tool name to force that tool, ``"auto"``, ``"none"``,
                ``"any"``/``"required"`` (some tool), ``True`` (the only tool), or a dict in
                the OpenAI form.
            parallel_tool_calls: Whether the model may call several tools in one answer.
            strict: Ask the server to keep arguments to each tool's schema exactly.
            kwargs: More request fields, as for ``bind``.
        """
        from langchain_lunar._tools import format_tool_choice, format_tools  # only when used

        formatted = format_tools(tools, strict=strict)
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = format_tool_choice(tool_choice, formatted)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: StructuredOutputMethod = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output follows ``schema`` (pydantic model, TypedDict or JSON schema).

        Args:
            schema: The shape of the output; a pydantic model gives instances, the others dicts.
                Only ``method="json_mode"`` works without one.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising when
                the answer does not parse.
            method: ``"function_calling"`` (a forced tool call), ``"json_schema"`` (the
                server's structured outputs) or ``"json_mode"`` (JSON output; say the shape
                in the prompt).
            strict: Ask the server to keep to the schema exactly.
            kwargs: More request fields, as for ``bind``.

        Streaming yields growing partial objects for dict outputs.
        """
        from langchain_core.utils.function_calling import convert_to_openai_tool

        from langchain_lunar._tools import (  # only when used
            raising_refusals,
            structured_output_request,
            with_raw,
        )

        fields, parser = structured_output_request(schema, method, strict)
        parser = raising_refusals() | parser
        model = self.bind(
            **fields,
            **kwargs,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": convert_to_openai_tool(schema) if schema is not None else None,
            },
        )
        return with_raw(model, parser) if include_raw else model | parser

    # Once per request: `self._clients` misses the instance's dict and falls back to pydantic's
    # __getattr__, Python code; reading the private dict directly is one dict look-up.
    def _sync_client(self) -> httpx.Client:
        clients: ClientPool = self.__pydantic_private__["_clients"]  # type: ignore[index]
        return self.http_client or clients.sync_client()

    def _async_client(self) -> httpx.AsyncClient:
        clients: ClientPool = self.__pydantic_private__["_clients"]  # type: ignore[index]
        return self.http_async_client or clients.async_client()

    def close(self) -> None:
        """Close this instance's connections, unless another open ChatLunar shares them.

        ChatLunar instances with the same connection settings share one connection pool
        (async: one per event loop); it is closed when every instance that used it has been
        closed. Your own ``http_client`` and ``http_async_client`` are left open. The instance
        stays usable: a later call opens (or joins) a pool again.
        """
        self._clients.close()

    async def aclose(self) -> None:
        """Close this instance's connections, as ``close()``, waiting for the running event
        loop's to close."""
        await self._clients.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
