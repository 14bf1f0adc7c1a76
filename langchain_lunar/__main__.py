"""``python -m langchain_lunar``: the streaming demo (see ``langchain_lunar._demo``)."""

from langchain_lunar._demo import main

if __name__ == "__main__":
    raise SystemExit(main())
