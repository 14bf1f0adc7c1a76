"""Model profiles: what LangChain may assume of a model id, from the models.dev data."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from langchain_core.language_models import ModelProfile


def profile_for(model: str) -> ModelProfile | None:
    """The profile of the model id ``model``, or None when the data does not know it.

    The id is looked up as written, first among full ids (OpenRouter's ``vendor/model``, such as
    ``anthropic/claude-sonnet-4.5``, and the makers' ``provider/model``, such as
    ``openai/gpt-4o-mini``), then among bare ids (``gpt-4o-mini``). Failing both, its first
    ``/`` segment is taken for a gateway's or host's prefix and dropped, and the rest is looked up
    the same way (``azure/gpt-4o-mini`` gets ``gpt-4o-mini``'s profile). How a bare id is chosen
    when several providers have it: tools/refresh_profiles.py.

    Each call returns a new dict, so changing one model's profile changes no other's.
    """
    # The data (about 1.5 ms to import) is read at the first ChatLunar built, not at import.
    from langchain_lunar import _profiles_data as data

    rest = model
    while True:
        full_id = rest if rest in data.PROFILES else data.BARE_IDS.get(rest)
        if full_id is not None:
            return cast("ModelProfile", dict(data.PROFILES[full_id]))
        _, slash, rest = rest.partition("/")
        if not slash:
            return None
