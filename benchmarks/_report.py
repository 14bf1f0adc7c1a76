"""Statistics, plain-text tables, the targets summary and the plot of the benchmark results.

A *row* is a dict: ``label``, ``client`` (family key), ``mode``, the statistics of its samples
(``median``, ``min``, ``max``, ``samples``), ``vs_openai``, ``vs_floor`` and ``vs_vendor``
(ratios of medians against ChatOpenAI, the floor and lunar-sdk's ChatLunar; None when there is
nothing to compare with), ``exact`` and ``errors``, plus any figure-specific numbers. Rows go
to the JSON as they are, so every printed number is there.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median and spread (min-max) of the samples; None for all when there are none."""
    if not samples:
        return {"median": None, "min": None, "max": None, "samples": []}
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": list(samples),
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def add_ratios(rows: list[Row], group: str = "mode") -> None:
    """Set ``vs_openai``, ``vs_floor`` and ``vs_vendor`` of each row against the rows of its
    ``group``."""
    for row in rows:
        peers = {peer["client"]: peer["median"] for peer in rows if peer[group] == row[group]}
        row["vs_openai"] = ratio(row["median"], peers.get("openai"))
        row["vs_floor"] = ratio(row["median"], peers.get("floor"))
        row["vs_vendor"] = ratio(row["median"], peers.get("vendor"))


def loglog_slope(sizes: Sequence[float], values: Sequence[float | None]) -> float | None:
    """Least-squares slope of log(value) against log(size): 1.0 is linear, 2.0 quadratic."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if v and v > 0]
    if len(points) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den


def _number(value: float | None) -> str:
    """About four significant digits, never in exponent form."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.{3 - int(math.log10(abs(value)))}f}"
    return f"{value:.3g}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


@dataclass(frozen=True)
class Column:
    """An extra table column: the row key, its header and how to show its value."""

    key: str
    header: str
    unit: str = ""


def format_table(title: str, unit: str, rows: Iterable[Row], extra: Sequence[Column] = ()) -> str:
    """One plain-text table: client, median, spread, ratios, then any extra columns. The
    ratio to lunar-sdk's ChatLunar is shown only in a figure that has one."""
    rows = list(rows)
    vendor = any(row.get("vs_vendor") is not None for row in rows)
    headers = [
        "client",
        f"median ({unit})",
        "spread (min-max)",
        "vs ChatOpenAI",
        "vs floor",
        *(["vs lunar-sdk"] if vendor else []),
        *(c.header for c in extra),
    ]
    lines = []
    for row in rows:
        spread = f"{_number(row['min'])}-{_number(row['max'])}" if row["samples"] else "n/a"
        cells = [
            row["label"],
            _number(row["median"]),
            spread,
            _times(row["vs_openai"]),
            _times(row["vs_floor"]),
            *([_times(row.get("vs_vendor"))] if vendor else []),
            *(_extra_cell(row.get(c.key), c.unit) for c in extra),
        ]
        lines.append(cells)
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *lines, strict=True)
    ]

    def render(cells: Sequence[str]) -> str:
        first, *others = cells
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(others, widths[1:], strict=True)]
        )

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([title, rule, render(headers), rule, *map(render, lines), rule])


def _extra_cell(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return _number(value) + unit
    return f"{value}{unit}"


@dataclass(frozen=True)
class Target:
    """One goal of the optimization: ``value`` compared with ``limit``."""

    name: str
    value: float | None
    limit: float
    unit: str  # "x" for ratios, "ms" for times
    status: str = ""  # MET, NOT MET, or SKIPPED (nothing to compare with)
    strict: bool = False  # the value must stay below the limit, not reach it

    @classmethod
    def check(
        cls, name: str, value: float | None, limit: float, unit: str, *, strict: bool = False
    ) -> Target:
        """The target with its status: met when ``value <= limit`` (``<`` when strict)."""
        if value is None:
            return cls(name, value, limit, unit, "SKIPPED", strict)
        met = value < limit if strict else value <= limit
        return cls(name, value, limit, unit, "MET" if met else "NOT MET", strict)

    def line(self) -> str:
        """The target as one line of the summary."""
        relation = "<" if self.strict else "<="
        if self.unit == "x":
            shown, bound = _times(self.value), f"{relation} {self.limit:.2f}x"
        else:
            shown = "n/a" if self.value is None else f"{self.value:.3f} {self.unit}".rstrip()
            bound = f"{relation} {self.limit:g} {self.unit}".rstrip()
        return f"  {self.status:<8} {self.name}: {shown} (target {bound})"


def format_summary(targets: Sequence[Target], header: str) -> str:
    """The closing summary: one line per target, then the count met."""
    met = sum(t.status == "MET" for t in targets)
    checked = sum(t.status != "SKIPPED" for t in targets)
    lines = [header, *(t.line() for t in targets), f"  {met} of {checked} checked targets met"]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str) -> None:
    """Two panels: per-chunk CPU bars (sync, async) and aggregation CPU against size (log-log)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the PNG only
    import matplotlib.pyplot as plt
    from _clients import LABELS

    clients = results["meta"]["clients"]
    families = [f for f in ("floor", "lunar", "openai", "vendor") if f in clients]
    figure, (bars, lines) = plt.subplots(1, 2, figsize=(12, 4.8))

    per_chunk = {(r["client"], r["mode"]): r for r in results["figures"]["per_chunk"]["rows"]}
    width = 0.38
    for offset, mode, color in ((-width / 2, "sync", "#4C72B0"), (width / 2, "async", "#DD8452")):
        rows = [per_chunk[(f, mode)] for f in families]
        medians = [r["median"] or 0 for r in rows]
        errors = [
            [m - (r["min"] or m) for m, r in zip(medians, rows, strict=True)],
            [(r["max"] or m) - m for m, r in zip(medians, rows, strict=True)],
        ]
        xs = [i + offset for i in range(len(families))]
        drawn = bars.bar(xs, medians, width, yerr=errors, capsize=3, label=mode, color=color)
        bars.bar_label(drawn, labels=[f"{m:.1f}" for m in medians], padding=2, fontsize=8)
    bars.set_xticks(range(len(families)), [LABELS[f] for f in families])
    bars.set_ylabel("client CPU per chunk (us), median, min-max")
    chunks = results["figures"]["per_chunk"]["chunks"]
    bars.set_title(f"Streaming: one {chunks:,}-chunk stream")
    bars.legend()

    aggregation = results["figures"]["aggregation"]
    sizes = aggregation["sizes"]
    for family in [f for f in families if f in aggregation["slopes"]]:  # those it measured
        by_size = {r["size"]: r for r in aggregation["rows"] if r["client"] == family}
        medians = [by_size[s]["median"] for s in sizes]
        slope = aggregation["slopes"].get(family)
        label = LABELS[family] + (f" (slope {slope:.2f})" if slope is not None else "")
        lines.plot(sizes, medians, marker="o", label=label)
    lines.set_xscale("log")
    lines.set_yscale("log")
    lines.set_xticks(sizes, [f"{s:,}" for s in sizes])
    lines.minorticks_off()
    lines.set_xlabel("chunks in the answer")
    lines.set_ylabel("client CPU (s), median")
    lines.set_title("Aggregation: invoke(..., stream=True)")
    lines.grid(True, which="both", alpha=0.3)
    lines.legend()

    meta = results["meta"]
    figure.suptitle(
        f"langchain-lunar client CPU ({meta['commit'][:10]}, {meta['rounds']} rounds, "
        f"{meta['cpu']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
