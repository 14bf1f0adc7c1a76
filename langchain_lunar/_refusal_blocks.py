"""A ``{"type": "refusal"}`` content block on Lunar's messages.

langchain-core derives standard content blocks (``message.content_blocks``, ``output_version=
"v1"``, v3 stream events) by provider. Only its OpenAI translator maps
``additional_kwargs["refusal"]`` to a refusal block, and ChatLunar's messages say
``model_provider="lunar"``. So ChatLunar registers a translator for its provider that adds the
refusal block to core's own best-effort blocks, and otherwise leaves everything to them.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages import content as types
from langchain_core.messages.block_translators import register_translator

from langchain_lunar._messages import refusal_of
from langchain_lunar._responses import PROVIDER


def _content_blocks(message: AIMessage | AIMessageChunk) -> list[types.ContentBlock]:
    refusal = refusal_of(message)
    if not refusal:
        raise NotImplementedError  # core then parses best-effort, as for any provider
    # The same message without a provider: core's best-effort blocks, without recursing here.
    metadata = {k: v for k, v in message.response_metadata.items() if k != "model_provider"}
    blocks = message.model_copy(update={"response_metadata": metadata}).content_blocks
    return [*blocks, types.RefusalContentBlock(type="refusal", refusal=refusal)]


def register() -> None:
    """Register the translator for ChatLunar's provider name."""
    register_translator(PROVIDER, _content_blocks, _content_blocks)
