"""Writes docs/benchmark-figures.md from what `make bench` left in .bench/: every figure of
every benchmark that ran, as measured, under the date of the run. `make bench` runs it
last, so the page always holds one run's figures and nothing else; the analysis beside
them lives in docs/benchmarks.md.

Usage: python -m bench.report [--out docs/benchmark-figures.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

BENCH = Path(".bench")
OUT = Path("docs/benchmark-figures.md")


def _rows(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every scalar in `value`, under its path ("sustained.routes./api/voice.p99_ms")."""
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += _rows(inner, f"{path}.{key}" if path else str(key))
        return rows
    if isinstance(value, list):
        rows = []
        for index, inner in enumerate(value):
            rows += _rows(inner, f"{path}[{index}]")
        return rows
    return [
        (
            path,
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value),
        )
    ]


def render(files: list[Path], when: datetime.date) -> str:
    lines = [
        "# Benchmark figures",
        "",
        f"Written by `make bench` on {when.isoformat()} (`python -m bench.report`); every",
        "figure below comes from that one run. What each benchmark does, and what the",
        "figures mean, is in [benchmarks.md](benchmarks.md).",
    ]
    for file in files:
        data = json.loads(file.read_text())
        title = str(data.pop("benchmark", file.stem)) if isinstance(data, dict) else file.stem
        machine = str(data.pop("machine", "")) if isinstance(data, dict) else ""
        lines += ["", f"## {file.stem}: {title}", ""]
        if machine:
            lines += [f"On {machine}.", ""]
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| `{path}` | {value} |" for path, value in _rows(data)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    files = sorted(BENCH.glob("*.json"))
    if not files:
        raise SystemExit("nothing in .bench/: run make bench first")
    args.out.write_text(render(files, datetime.date.today()))
    print(f"written to {args.out} ({len(files)} benchmarks)")


if __name__ == "__main__":
    main()
