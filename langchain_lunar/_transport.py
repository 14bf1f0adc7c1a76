"""HTTP for ChatLunar: one request/response exchange; ``_error_mapping`` translates its errors."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from time import monotonic
from typing import Any, NamedTuple, NoReturn, TypeVar

import httpx
from langchain_core.outputs import ChatResult

from langchain_lunar._body_reads import (
    Body,
    abody_reads,
    aread_body,
    body_reads,
    read_body,
)
from langchain_lunar._chunk_timeout import (
    NEVER,
    DataDeadline,
    first_deadline,
    stream_timeout,
    watch_async,
    watch_sync,
    widen_body_timeout,
)
from langchain_lunar._drain import drain_async, drain_sync
from langchain_lunar._error_mapping import (
    error_from_event,
    error_from_response,
    first_stall_error,
    stall_error,
    translate_transport_error,
)
from langchain_lunar._exceptions import APITimeoutError, MalformedResponseError
from langchain_lunar._json import loads
from langchain_lunar._log_masking import hold_secrets, release_secrets
from langchain_lunar._media_out import requested_audio_format
from langchain_lunar._messages import ReturnedReasoning
from langchain_lunar._responses import ShapeError, completion_to_result
from langchain_lunar._secrets import Secrets, quote, redact
from langchain_lunar._sse import MAX_EVENT_BYTES
from langchain_lunar._streaming import BaseAssembler, StreamAssembler
from langchain_lunar._wrong_answers import (
    empty_answer_error,
    is_page,
    is_redirect,
    no_events_error,
    not_json_error,
    page_error,
    redirect_error,
    too_large_error,
)

ItemT = TypeVar("ItemT")


class CompletionRequest(NamedTuple):
    """Everything needed to send one ``POST /chat/completions``."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    timeout: httpx.Timeout
    model: str
    secrets: Secrets
    failed_attempts: tuple[dict[str, Any], ...] = ()
    stream_chunk_timeout: float | None = None
    """The longest wait in seconds for the next data event of a stream; None: no limit."""
    first_chunk_timeout: float | None = None
    """The longest wait in seconds for the first data event of a stream, from the request on
    (its response headers included); None: no limit."""

    returned_reasoning: ReturnedReasoning | None = None
    """Reasoning that earlier assistant messages send back, each to its own model only."""

    max_event_bytes: int = MAX_EVENT_BYTES
    """The most bytes of one event, a whole answer or an error body, decompressed."""

    def for_model(
        self, model: str, failed_attempts: tuple[dict[str, Any], ...]
    ) -> CompletionRequest:
        """This request sent to ``model`` instead, after ``failed_attempts``."""
        if model == self.model and failed_attempts == self.failed_attempts:
            return self
        body = {**self.body, "model": model}
        if self.returned_reasoning is not None:
            body["messages"] = self.returned_reasoning.messages_for(model)
        return self._replace(body=body, model=model, failed_attempts=failed_attempts)


Assembly = Callable[[CompletionRequest], BaseAssembler[ItemT]]
"""Makes the assembler of one streaming request's answer, which says what its items are."""


def chunk_assembler(request: CompletionRequest) -> StreamAssembler:
    """The assembler of ``ChatGenerationChunk`` items, for ``_stream``."""
    return StreamAssembler(
        request.model,
        secrets=request.secrets,
        failed_attempts=request.failed_attempts,
        audio_format=requested_audio_format(request.body),
        max_event_bytes=request.max_event_bytes,
    )


def stream_completion(
    client: httpx.Client, request: CompletionRequest, assembly: Assembly[ItemT]
) -> Generator[ItemT, None, None]:
    """Send a streaming request and yield the items of its answer, as ``assembly``'s
    assembler makes them (with ``chunk_assembler``, chunks: the last has
    chunk_position="last").

    Leaving the loop early (break, ``close()``) closes the response at once. No first data
    event within ``request.first_chunk_timeout`` of the request, or a stall of
    ``request.stream_chunk_timeout`` between data events, raises (see ``_chunk_timeout``).
    ``data: [DONE]`` ends the stream at once: the last chunk comes, then what follows is read
    only briefly (see ``_drain``). Redirects are never followed (see ``_wrong_answers``).
    """
    assembler = assembly(request)
    chunk_timeout = request.stream_chunk_timeout
    first_timeout = request.first_chunk_timeout
    timeout = stream_timeout(request.timeout, first_timeout)
    guard: DataDeadline | None = None
    stalled = False
    hold_secrets(request.secrets)  # masked in httpx's own log lines while in flight
    started = monotonic()
    try:
        with client.stream(
            "POST",
            request.url,
            json=request.body,
            headers=request.headers,
            timeout=timeout,
            follow_redirects=False,  # whatever the client's setting: see _wrong_answers
        ) as response:
            if is_redirect(response):
                raise redirect_error(response, request.secrets)
            if response.is_error or _is_json(response):
                _raise_for_json_answer(
                    response, request, read_body(response, request.max_event_bytes)
                )
            if is_page(response):
                raise page_error(response, request.secrets, "Server-Sent Events")
            reads = body_reads(response)
            if chunk_timeout is None and first_timeout is None:
                for data in reads:
                    for item in assembler.feed(data):
                        yield item
                    if assembler.done:
                        break
            else:
                widen_body_timeout(response, request.timeout.read, first_timeout, chunk_timeout)
                gap = NEVER if chunk_timeout is None else chunk_timeout
                guard = watch_sync(response, gap, first_deadline(started, first_timeout))
                try:
                    seen = 0
                    for data in reads:
                        items = assembler.feed(data)
                        if assembler.data_events != seen:
                            seen = assembler.data_events
                            guard.deadline = NEVER  # the caller's time with the items is no wait
                            for item in items:
                                yield item
                            if assembler.done:
                                break
                            guard.deadline = monotonic() + gap
                        elif monotonic() >= guard.deadline:  # only comments, or part of an event
                            stalled = True
                            break  # leaving the response's block closes the connection
                    else:
                        # A body that runs until the connection closes ends without an error
                        # when the watchdog cuts it.
                        stalled = guard.fired
                finally:
                    guard.release()  # watching ends with the loop (or the response's close)
            if assembler.done:
                # The answer is whole: the caller has it at once, then the rest is drained.
                yield assembler.finish()
                drain_sync(reads, response, assembler)
                return
    except httpx.HTTPError as error:
        # After [DONE] the answer is whole; a broken connection while draining changes nothing.
        # A read that failed past the deadline failed because of it (the watchdog's cut, or the
        # lowered read timeout): that is raised below as the stall, without this error.
        stalled = _is_stall(error, guard, started, first_timeout)
        if not assembler.done and not stalled:
            # The cause chain is set by translate_transport_error and fail(); `from` would cut it.
            raise assembler.fail(translate_transport_error(error, request.secrets))  # noqa: B904
    finally:
        release_secrets(request.secrets)
    if stalled and not assembler.done:
        raise assembler.fail(_stall_error(assembler, request))
    for item in assembler.close(lambda: no_events_error(response, request.secrets)):
        yield item


async def astream_completion(
    client: httpx.AsyncClient, request: CompletionRequest, assembly: Assembly[ItemT]
) -> AsyncGenerator[ItemT, None]:
    """Async twin of ``stream_completion``; cancelling the task closes the response at once."""
    assembler = assembly(request)
    chunk_timeout = request.stream_chunk_timeout
    first_timeout = request.first_chunk_timeout
    timeout = stream_timeout(request.timeout, first_timeout)
    guard: DataDeadline | None = None
    stalled = False
    hold_secrets(request.secrets)  # masked in httpx's own log lines while in flight
    started = monotonic()
    try:
        async with client.stream(
            "POST",
            request.url,
            json=request.body,
            headers=request.headers,
            timeout=timeout,
            follow_redirects=False,  # whatever the client's setting: see _wrong_answers
        ) as response:
            if is_redirect(response):
                raise redirect_error(response, request.secrets)
            if response.is_error or _is_json(response):
                body = await aread_body(response, request.max_event_bytes)
                _raise_for_json_answer(response, request, body)
            if is_page(response):
                raise page_error(response, request.secrets, "Server-Sent Events")
            reads = abody_reads(response)
            if chunk_timeout is None and first_timeout is None:
                async for data in reads:
                    for item in assembler.feed(data):
                        yield item
                    if assembler.done:
                        break
            else:
                widen_body_timeout(response, request.timeout.read, first_timeout, chunk_timeout)
                gap = NEVER if chunk_timeout is None else chunk_timeout
                guard = watch_async(response, gap, first_deadline(started, first_timeout))
                try:
                    seen = 0
                    async for data in reads:
                        items = assembler.feed(data)
                        if assembler.data_events != seen:
                            seen = assembler.data_events
                            guard.deadline = NEVER  # the caller's time with the items is no wait
                            for item in items:
                                yield item
                            if assembler.done:
                                break
                            guard.deadline = monotonic() + gap
                        elif monotonic() >= guard.deadline:  # only comments, or part of an event
                            stalled = True
                            break  # leaving the response's block closes the connection
                    else:
                        # A body that runs until the connection closes ends without an error
                        # when the watchdog cuts it.
                        stalled = guard.fired
                finally:
                    guard.release()  # watching ends with the loop (or the response's close)
            if assembler.done:
                # The answer is whole: the caller has it at once, then the rest is drained.
                yield assembler.finish()
                await drain_async(reads, response, assembler)
                return
    except httpx.HTTPError as error:
        # After [DONE] the answer is whole; a broken connection while draining changes nothing.
        # A read that failed past the deadline failed because of it (the watchdog's cut, or the
        # lowered read timeout): that is raised below as the stall, without this error.
        stalled = _is_stall(error, guard, started, first_timeout)
        if not assembler.done and not stalled:
            # The cause chain is set by translate_transport_error and fail(); `from` would cut it.
            raise assembler.fail(translate_transport_error(error, request.secrets))  # noqa: B904
    finally:
        release_secrets(request.secrets)
    if stalled and not assembler.done:
        raise assembler.fail(_stall_error(assembler, request))
    for item in assembler.close(lambda: no_events_error(response, request.secrets)):
        yield item


def _is_stall(
    error: httpx.HTTPError,
    guard: DataDeadline | None,
    started: float,
    first_timeout: float | None,
) -> bool:
    """Whether ``error`` ended a stream that had waited too long for a data event."""
    if guard is not None:
        return guard.expired()
    # Before the body: the read timeout, at most first_timeout, ran out while the headers were
    # awaited. (Only one that ran first_timeout long: a shorter one is the user's, or not ours.)
    return (
        first_timeout is not None
        and isinstance(error, httpx.ReadTimeout)
        and monotonic() - started >= first_timeout
    )


def _stall_error(assembler: BaseAssembler[Any], request: CompletionRequest) -> APITimeoutError:
    """The error for a stream that waited too long: for its first data event, or a next one."""
    if assembler.data_events == 0:
        return first_stall_error(assembler.model, request.first_chunk_timeout)
    return stall_error(assembler.model, request.stream_chunk_timeout)


def complete(client: httpx.Client, request: CompletionRequest) -> ChatResult:
    """Send a non-streaming request and convert its answer."""
    hold_secrets(request.secrets)  # masked in httpx's own log lines while in flight
    try:
        with client.stream(
            "POST",
            request.url,
            json=request.body,
            headers=request.headers,
            timeout=request.timeout,
            follow_redirects=False,  # whatever the client's setting: see _wrong_answers
        ) as response:
            # Bounded: a body cut short closes the connection as the block ends.
            body = read_body(response, request.max_event_bytes)
    except httpx.HTTPError as error:
        raise translate_transport_error(error, request.secrets) from error
    finally:
        release_secrets(request.secrets)
    return _result_from(response, request, body)


async def acomplete(client: httpx.AsyncClient, request: CompletionRequest) -> ChatResult:
    """Async twin of ``complete``."""
    hold_secrets(request.secrets)  # masked in httpx's own log lines while in flight
    try:
        async with client.stream(
            "POST",
            request.url,
            json=request.body,
            headers=request.headers,
            timeout=request.timeout,
            follow_redirects=False,  # whatever the client's setting: see _wrong_answers
        ) as response:
            body = await aread_body(response, request.max_event_bytes)
    except httpx.HTTPError as error:
        raise translate_transport_error(error, request.secrets) from error
    finally:
        release_secrets(request.secrets)
    return _result_from(response, request, body)


def _result_from(response: httpx.Response, request: CompletionRequest, body: Body) -> ChatResult:
    payload = _checked_payload(response, request, body)
    if request.secrets and type(payload) is dict:
        # They reach the message's id and response_metadata: a server may echo the key there,
        # as in a stream's (which _streaming masks).
        for name in ("id", "model", "system_fingerprint"):
            value = payload.get(name)
            if type(value) is str:
                payload[name] = redact(value, request.secrets)
    try:
        return completion_to_result(
            payload,
            request.model,
            request.failed_attempts,
            audio_format=requested_audio_format(request.body),
        )
    except ShapeError as problem:
        raise MalformedResponseError(
            f"The answer from {request.model} has {problem}: "
            + quote(response.text, request.secrets)
        ) from None


def _raise_for_json_answer(
    response: httpx.Response, request: CompletionRequest, body: Body
) -> NoReturn:
    """Raise for a streaming request answered with an error status or a JSON body."""
    _checked_payload(response, request, body)
    raise MalformedResponseError(
        "The server answered a streaming request with JSON instead of Server-Sent Events: "
        + quote(response.text, request.secrets)
    )


def _checked_payload(response: httpx.Response, request: CompletionRequest, body: Body) -> Any:
    """The answer's JSON, after raising the typed error for an error status or error body."""
    if is_redirect(response):
        raise redirect_error(response, request.secrets)
    if response.is_error:
        raise error_from_response(
            response.status_code,
            body.content,
            response.headers,
            reason=response.reason_phrase,
            secrets=request.secrets,
            cut_at=None if body.whole else request.max_event_bytes,
        )
    if not body.whole:
        raise too_large_error(f"The answer from {request.model}", request.max_event_bytes)
    payload = _json_body(response, request)
    if isinstance(payload, dict) and payload.get("error") is not None:
        raise error_from_event(payload, secrets=request.secrets)
    return payload


def _json_body(response: httpx.Response, request: CompletionRequest) -> Any:
    try:
        return loads(response.content)
    except ValueError:
        pass
    # Raised outside the handler: the JSON parser's error says nothing more.
    if not response.content:
        raise empty_answer_error(response, request.secrets)
    raise not_json_error(response, request.secrets)


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")
