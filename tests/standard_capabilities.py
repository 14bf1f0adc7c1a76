"""What ChatLunar declares to LangChain's standard test suites, shared by the unit and live ones."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from langchain_lunar import ChatLunar


class LunarCapabilities:
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatLunar

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True
