"""The public names of ``langchain_lunar``: every one importable, and the ones ``ChatLunar``
does not need imported only when first used (part of the import-time budget)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import langchain_lunar

LAZY_MODULES = (
    "langchain_lunar._stream_handler",
    "langchain_lunar._usage_callback",
    "langchain_lunar._redis_rate_limiter",
)


@pytest.mark.parametrize("name", langchain_lunar.__all__)
def test_every_public_name_is_there(name: str) -> None:
    value = getattr(langchain_lunar, name)
    assert value is not None
    assert name in dir(langchain_lunar)


def test_star_import_gives_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from langchain_lunar import *", namespace)
    assert set(langchain_lunar.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'ChatLunr'"):
        langchain_lunar.ChatLunr  # type: ignore[attr-defined]  # noqa: B018


def test_importing_chat_lunar_leaves_the_handlers_and_the_rate_limiter_unimported() -> None:
    code = (
        "import sys; from langchain_lunar import ChatLunar; "
        f"loaded = [m for m in {LAZY_MODULES!r} if m in sys.modules]; "
        "assert not loaded, loaded; "
        "from langchain_lunar import LunarStreamHandler, get_lunar_callback; "
        "assert 'langchain_lunar._stream_handler' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
