"""aura-eval's scenario files: every sample scenario loads; a malformed one is refused
naming the file and the field; suites filter by tag and refuse duplicate names; pass
rates count only what was checked, and a skipped check never counts as passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from aura_phone import reports
from aura_phone.eval_cli import main
from aura_phone.evaluate import CheckResult, Run, caller_number
from aura_phone.scenarios import load_suite
from aura_phone.script import ScriptError

SUITE = Path(__file__).resolve().parents[2] / "evals" / "sample-bakery"


def test_the_sample_suite_loads_with_its_hostile_and_awkward_callers() -> None:
    suite = load_suite(SUITE)
    assert len(suite) >= 20
    assert sum("hostile" in s.tags for s in suite) >= 5
    assert {s.name for s in load_suite(SUITE, ("smoke",))} == {
        "Saturday opening hours",
        "Leaving a message",
        "Asking for the manager",
    }


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("name: x\nsteps: [{say: hi}]\nchecks: [{heard: a, never_heard: b}]", "one check per item"),
        ("name: x\nsteps: [{say: hi}]\nchecks: [{arguments: {a: 1}}]", "one check per item"),
        ("name: x\nsteps: [{say: hi}]\ncaller: {goal: g}", "give steps, or a caller"),
        ("name: x\n", "give steps, or a caller"),
        ("name: x\nsteps: [{say: hi, shout: yes}]", "steps.0.shout"),
        ("steps: [{say: hi}]", "name: Field required"),
        ("name: x\nsteps: [{say: hi}]\njudge: ['']", "judge.0"),
    ],
)
def test_a_malformed_scenario_is_refused_naming_what_is_wrong(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScriptError, match=complaint) as refused:
        load_suite(path)
    assert str(path) in str(refused.value)


def test_a_mounted_configmap_is_read_once(tmp_path: Path) -> None:
    # Kubernetes keeps a ConfigMap's files in a hidden, timestamped directory, with
    # ..data and each file's name as links to it.
    hidden = tmp_path / "..2026_12_05_00_00_00.1"
    hidden.mkdir()
    (hidden / "a.yaml").write_text("name: one\nsteps: [{say: hi}]\n")
    (tmp_path / "..data").symlink_to(hidden.name)
    (tmp_path / "a.yaml").symlink_to("..data/a.yaml")
    assert [s.name for s in load_suite(tmp_path)] == ["one"]


def test_names_are_unique_and_a_bad_suite_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("name: same\nsteps: [{say: hi}]\n")
    with pytest.raises(ScriptError, match="must be unique: same"):
        load_suite(tmp_path)
    assert main(["--suite", str(tmp_path)]) == 2
    assert "must be unique" in capsys.readouterr().err
    assert main(["--suite", str(tmp_path / "missing")]) == 2


def test_pass_rates_count_what_was_checked_and_skips_never_pass() -> None:
    suite = load_suite(SUITE / "01-saturday-hours.yaml")
    runs = [
        Run(
            "Saturday opening hours",
            0,
            checks=[CheckResult("a", "pass"), CheckResult("j", "skipped", "no model")],
        ),
        Run(
            "Saturday opening hours",
            1,
            checks=[
                CheckResult("a", "fail", "heard nothing"),
                CheckResult("j", "skipped", "no model"),
            ],
        ),
    ]
    [summary] = reports.summarise(suite, runs)
    assert summary.pass_rate == 0.5
    rates = {c.name: c.rate for c in summary.checks}
    assert rates == {"a": 0.5, "j": None}
    assert reports.below([summary], 0.5) == []
    assert reports.below([summary], 0.8) == [summary]
    text = reports.table([summary])
    assert "FAIL Saturday opening hours: a passed 50%: heard nothing" in text
    assert 'failures="1"' in reports.junit([summary], 0.8)
    page = reports.page([summary], 0.8)
    assert "heard nothing" in page
    assert "<script" not in page  # self-contained and inert


def test_each_call_rings_from_a_number_of_its_own_unless_the_scenario_names_one() -> None:
    [hours] = load_suite(SUITE / "01-saturday-hours.yaml")
    numbers = {caller_number(hours) for _ in range(50)}
    assert len(numbers) > 45  # a repeated suite never meets the per-number hourly limit
    assert all(n.startswith("+1555") and len(n) == 12 for n in numbers)
    [message] = load_suite(SUITE / "11-leave-a-message.yaml")
    message.caller_number = "+15550100"
    assert caller_number(message) == "+15550100"
