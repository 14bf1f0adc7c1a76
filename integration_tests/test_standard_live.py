"""LangChain's standard integration tests against the live Lunar API (needs LUNAR_API_KEY)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.standard_capabilities import LunarCapabilities

pytestmark = pytest.mark.skipif(
    not os.environ.get("LUNAR_API_KEY"), reason="set LUNAR_API_KEY to run against the live API"
)


class TestChatLunarLive(LunarCapabilities, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": os.environ.get("LUNAR_TEST_MODEL", "gpt-4o-mini")}

    @property
    def model_override_value(self) -> str:
        return os.environ.get("LUNAR_TEST_OVERRIDE_MODEL", "gpt-4o")
