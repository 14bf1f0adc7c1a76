"""Tools and structured output: request fields for ``bind_tools`` and ``with_structured_output``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.exceptions import ModelRefusalError
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_lunar._messages import refusal_of

ToolLike = dict[str, Any] | type | Callable[..., Any] | BaseTool
StructuredOutputMethod = Literal["function_calling", "json_schema", "json_mode"]

_CHOICE_ALIASES = {"auto": "auto", "none": "none", "any": "required", "required": "required"}


def format_tools(tools: Sequence[ToolLike], *, strict: bool | None) -> list[dict[str, Any]]:
    """Every tool form LangChain accepts, as OpenAI-style function tools."""
    return [convert_to_openai_tool(tool, strict=strict) for tool in tools]


def format_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    """Map a LangChain ``tool_choice`` to the wire form, checking a named tool exists.

    Accepts a tool name, ``"auto"``, ``"none"``, ``"any"``/``"required"``, ``True`` (the only
    tool, or any tool), or an OpenAI-style dict (sent as it is).
    """
    names = [tool["function"]["name"] for tool in tools]
    if isinstance(choice, dict):
        return choice
    if choice is True:
        return _named(names[0]) if len(names) == 1 else "required"
    if isinstance(choice, str):
        if choice in _CHOICE_ALIASES:
            return _CHOICE_ALIASES[choice]
        if choice in names:
            return _named(choice)
        raise ValueError(
            f"tool_choice={choice!r} names no bound tool; the tools are {names}. Use one of "
            "them, or 'auto', 'none', 'any' or 'required'."
        )
    raise TypeError(
        f"tool_choice must be a tool name, 'auto', 'none', 'any', 'required', True or a dict; "
        f"got {choice!r}"
    )


def _named(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


def structured_output_request(
    schema: Any, method: StructuredOutputMethod, strict: bool | None
) -> tuple[dict[str, Any], Runnable[Any, Any]]:
    """The request fields and the output parser for ``with_structured_output``."""
    pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    if schema is None and method != "json_mode":
        raise ValueError(f'method="{method}" needs a schema; only "json_mode" works without one')
    if method == "function_calling":
        tool = convert_to_openai_tool(schema, strict=strict)
        name = tool["function"]["name"]
        fields = {
            "tools": [tool],
            "tool_choice": _named(name),
            "parallel_tool_calls": False,
        }
        parser: Runnable[Any, Any] = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)
            if pydantic
            else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        )
        return fields, parser
    if method == "json_schema":
        json_schema = convert_to_json_schema(schema, strict=strict)
        format_: dict[str, Any] = {
            "name": json_schema.get("title", "output"),
            "schema": json_schema,
        }
        if strict is not None:
            format_["strict"] = strict
        fields = {"response_format": {"type": "json_schema", "json_schema": format_}}
    elif method == "json_mode":
        fields = {"response_format": {"type": "json_object"}}
    else:
        raise ValueError(
            f"method={method!r} is not one of 'function_calling', 'json_schema', 'json_mode'"
        )
    parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
    return fields, parser


def raising_refusals() -> Runnable[Any, Any]:
    """Passes messages (or streamed chunks) on, unless the model refused: then raises
    ``ModelRefusalError`` with the refusal's whole text once the answer has ended."""
    return RunnableGenerator(_raise_refusals, _araise_refusals, name="raise_refusals")


def _raise_refusals(messages: Iterator[Any]) -> Iterator[Any]:
    answer = _Answer()
    for message in messages:
        if answer.passes(message):
            yield message
    answer.raise_if_refused()


async def _araise_refusals(messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
    answer = _Answer()
    async for message in messages:
        if answer.passes(message):
            yield message
    answer.raise_if_refused()


class _Answer:
    """The messages (or chunks) of one answer so far, and the refusal text among them."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.refusal = ""

    def passes(self, message: Any) -> bool:
        """Keep ``message``; True when it carries no refusal and may go on."""
        self.seen.append(message)
        piece = refusal_of(message) if isinstance(message, BaseMessage) else ""
        self.refusal += piece
        return not piece

    def raise_if_refused(self) -> None:
        """At the answer's end: raise for its whole refusal text, if it refused."""
        if not self.refusal:
            return
        seen = self.seen
        whole = seen[0] if len(seen) == 1 else seen[0] + seen[1:]
        raise ModelRefusalError(
            f"Model refused to produce the requested output: {self.refusal}", raw_message=whole
        )


def with_raw(model: Runnable[Any, Any], parser: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """``{"raw": message, "parsed": value or None, "parsing_error": error or None}``."""
    parsed = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=model) | parsed.with_fallbacks([unparsed], exception_key="parsing_error")
