"""aura-eval's results: per scenario and per check, the pass rate over its runs, with turn
latency p50/p95; as a terminal table, JSON, JUnit XML (for CI) and a self-contained HTML
report that shows each failed check with the transcript around it."""

from __future__ import annotations

import html
import json
import statistics
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from aura_phone.evaluate import Run
from aura_phone.scenarios import Scenario

# Lines of transcript shown around a failed check in the HTML report.
CONTEXT_LINES = 3


@dataclass
class CheckRate:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        made = self.passed + self.failed
        return self.passed / made if made else None


@dataclass
class Summary:
    scenario: Scenario
    runs: list[Run]
    checks: list[CheckRate]

    @property
    def skipped(self) -> str:
        return next((r.skipped for r in self.runs if r.skipped), "")

    @property
    def pass_rate(self) -> float | None:
        played = [r for r in self.runs if not r.skipped]
        return sum(r.passed for r in played) / len(played) if played else None

    @property
    def latencies(self) -> list[float]:
        return [ms for r in self.runs for ms in r.latencies_ms]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def summarise(scenarios: list[Scenario], runs: list[Run]) -> list[Summary]:
    summaries = []
    for scenario in scenarios:
        mine = [r for r in runs if r.scenario == scenario.name]
        rates: dict[str, CheckRate] = {}
        for run in mine:
            for check in run.checks:
                rate = rates.setdefault(check.name, CheckRate(check.name))
                if check.status == "pass":
                    rate.passed += 1
                elif check.status == "fail":
                    rate.failed += 1
                    rate.reasons.append(check.reason)
                else:
                    rate.skipped += 1
                    if check.reason not in rate.reasons:
                        rate.reasons.append(check.reason)
        summaries.append(Summary(scenario, mine, list(rates.values())))
    return summaries


def below(summaries: list[Summary], minimum: float) -> list[Summary]:
    """The scenarios whose pass rate is under `minimum` (skipped ones are not)."""
    return [s for s in summaries if s.pass_rate is not None and s.pass_rate < minimum]


def _percent(rate: float | None) -> str:
    return "skipped" if rate is None else f"{rate * 100:.0f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(summaries: list[Summary]) -> str:
    """What the terminal shows: one line per scenario, then each failing check."""
    rows = [("scenario", "runs", "pass", "p50 ms", "p95 ms")]
    for s in summaries:
        rows.append(
            (
                s.scenario.name,
                str(len(s.runs)),
                _percent(s.pass_rate),
                _ms(percentile(s.latencies, 0.50)),
                _ms(percentile(s.latencies, 0.95)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for s in summaries:
        if s.skipped:
            lines.append(f"  skipped {s.scenario.name}: {s.skipped}")
        for run in s.runs:
            if run.error:
                lines.append(f"  FAIL {s.scenario.name} (run {run.index + 1}): {run.error}")
        for check in s.checks:
            if check.failed:
                reason = check.reasons[0] if check.reasons else ""
                rate = _percent(check.rate)
                lines.append(f"  FAIL {s.scenario.name}: {check.name} passed {rate}: {reason}")
    judged = [c for s in summaries for c in s.checks if c.name.startswith("judge:")]
    if judged and all(c.rate is None for c in judged):
        lines.append("  judge criteria skipped: " + (judged[0].reasons or ["no judge"])[0])
    return "\n".join(lines)


def as_json(summaries: list[Summary], minimum: float) -> dict[str, Any]:
    return {
        "min_pass_rate": minimum,
        "passed": not below(summaries, minimum),
        "scenarios": [
            {
                "name": s.scenario.name,
                "path": s.scenario.path,
                "runs": len(s.runs),
                "pass_rate": s.pass_rate,
                "skipped": s.skipped or None,
                "latency_ms": {
                    "p50": percentile(s.latencies, 0.50),
                    "p95": percentile(s.latencies, 0.95),
                },
                "checks": [
                    {
                        "name": c.name,
                        "pass_rate": c.rate,
                        "passed": c.passed,
                        "failed": c.failed,
                        "skipped": c.skipped,
                        "reasons": c.reasons,
                    }
                    for c in s.checks
                ],
                "calls": [
                    {
                        "call_sid": r.call_sid,
                        "passed": r.passed,
                        "error": r.error or None,
                        "checks": [
                            {"name": c.name, "status": c.status, "reason": c.reason}
                            for c in r.checks
                        ],
                        "transcript": [{"who": w, "text": t} for w, t in r.transcript],
                    }
                    for r in s.runs
                ],
            }
            for s in summaries
        ],
    }


def junit(summaries: list[Summary], minimum: float) -> str:
    """One testcase per scenario; a failure when its pass rate is under the minimum."""
    failing = {id(s) for s in below(summaries, minimum)}
    suite = ElementTree.Element(
        "testsuite",
        name="aura-eval",
        tests=str(len(summaries)),
        failures=str(len(failing)),
        skipped=str(sum(1 for s in summaries if s.pass_rate is None)),
    )
    for s in summaries:
        seconds = sum(s.latencies) / 1000
        case = ElementTree.SubElement(
            suite, "testcase", classname="aura-eval", name=s.scenario.name, time=f"{seconds:.3f}"
        )
        if s.pass_rate is None:
            ElementTree.SubElement(case, "skipped", message=s.skipped or "every check skipped")
        elif id(s) in failing:
            failed = [c for c in s.checks if c.failed]
            message = f"passed {_percent(s.pass_rate)} of {len(s.runs)} runs, under {minimum:.0%}"
            failure = ElementTree.SubElement(case, "failure", message=message)
            failure.text = "\n".join(f"{c.name}: {c.reasons[0]}" for c in failed if c.reasons)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.pass{color:#176b2c}.fail{color:#b3261e;font-weight:600}.skipped{color:#777}
.transcript{background:#f6f6f6;padding:.5rem .8rem;border-radius:4px;margin:.3rem 0 1rem}
.transcript p{margin:.15rem 0}.who{display:inline-block;width:4.5rem;color:#555}
.here{background:#fde7e5}
"""


def _class(rate: float | None) -> str:
    return "skipped" if rate is None else "pass" if rate >= 1 else "fail"


def page(summaries: list[Summary], minimum: float) -> str:
    """A self-contained HTML report: no scripts, no external files."""
    e = html.escape
    out = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>aura-eval</title>",
        f"<style>{_STYLE}</style><h1>aura-eval: {len(summaries)} scenarios</h1>",
        f"<p>Minimum pass rate {minimum:.0%}: "
        + (
            "<span class=pass>met</span>"
            if not below(summaries, minimum)
            else "<span class=fail>not met</span>"
        )
        + "</p><table><tr><th>scenario<th>runs<th>pass rate<th>p50 ms<th>p95 ms",
    ]
    for s in summaries:
        out.append(
            f"<tr><td><a href='#s{id(s)}'>{e(s.scenario.name)}</a><td>{len(s.runs)}"
            f"<td class={_class(s.pass_rate)}>{_percent(s.pass_rate)}"
            f"<td>{_ms(percentile(s.latencies, 0.5))}<td>{_ms(percentile(s.latencies, 0.95))}"
        )
    out.append("</table>")
    for s in summaries:
        out.append(f"<h2 id='s{id(s)}'>{e(s.scenario.name)}</h2>")
        if s.scenario.description:
            out.append(f"<p>{e(s.scenario.description)}</p>")
        if s.skipped:
            out.append(f"<p class=skipped>Skipped: {e(s.skipped)}</p>")
        out.append("<table><tr><th>check<th>pass rate<th>runs")
        for c in s.checks:
            out.append(
                f"<tr><td>{e(c.name)}<td class={_class(c.rate)}>{_percent(c.rate)}"
                f"<td>{c.passed} passed, {c.failed} failed, {c.skipped} skipped"
            )
        out.append("</table>")
        for run in s.runs:
            if run.error:
                out.append(f"<p class=fail>Run {run.index + 1}: {e(run.error)}</p>")
            for check in run.checks:
                if check.status != "fail":
                    continue
                out.append(
                    f"<p class=fail>Run {run.index + 1} ({e(run.call_sid)}): {e(check.name)}"
                    f" &mdash; {e(check.reason)}</p><div class=transcript>"
                )
                at = check.at if check.at is not None else len(run.transcript) - 1
                start = max(0, at - CONTEXT_LINES)
                for i, (who, text) in enumerate(
                    run.transcript[start : at + CONTEXT_LINES + 1], start
                ):
                    mark = " class=here" if i == at else ""
                    out.append(f"<p{mark}><span class=who>{e(who)}</span>{e(text)}</p>")
                out.append("</div>")
    out.append("</html>")
    return "\n".join(out)


def write_json(path: str, summaries: list[Summary], minimum: float) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(as_json(summaries, minimum), out, indent=2)
