"""`aura-eval`: run a suite of scenarios against an Aura deployment, in any voice mode
(--realtime for Media Streams), and report the pass rate of each scenario and check.

  aura-eval --suite evals/sample-bakery                  # against make run
  aura-eval --suite evals/sample-bakery --repeat 5 --concurrency 4 \\
            --junit eval.xml --json eval.json --html eval.html --min-pass-rate 0.8

It reads what aura-call reads (AURA_BASE_URL, TWILIO_AUTH_TOKEN, TWILIO_ACCOUNT_SID,
PUBLIC_BASE_URL, and ADMIN_API_TOKEN for the checks that read the call's transcript and
for the judge), from the environment or ./.env. It exits 1 when a scenario's pass rate is
under the minimum, 2 when the suite cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aura_phone import reports
from aura_phone.evaluate import Run, Target, run_suite
from aura_phone.scenarios import load_suite
from aura_phone.script import CallerSettings, ScriptError


def main(argv: list[str] | None = None) -> int:
    defaults = CallerSettings()
    parser = argparse.ArgumentParser(prog="aura-eval", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="a scenario file or directory")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario (1)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls at once (1)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    parser.add_argument(
        "--min-pass-rate",
        type=float,
        default=1.0,
        help="the pass rate every scenario must reach, 0 to 1 (1.0)",
    )
    parser.add_argument("--tag", action="append", default=[], help="only scenarios so tagged")
    parser.add_argument(
        "--url", default=defaults.url, help="the deployment (default: as aura-call)"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play Twilio Media Streams (VOICE_MODE=realtime): the caller speaks audio "
        "(espeak-ng when installed), the assistant's words are read from the transcript API",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per call")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.concurrency < 1 or not 0 <= args.min_pass_rate <= 1:
        parser.error("--repeat and --concurrency are at least 1; --min-pass-rate is 0 to 1")
    try:
        scenarios = load_suite(args.suite, tuple(args.tag))
    except ScriptError as error:
        print(f"aura-eval: {error}", file=sys.stderr)
        return 2
    target = Target(
        args.url,
        defaults.TWILIO_AUTH_TOKEN,
        defaults.PUBLIC_BASE_URL,
        defaults.TWILIO_ACCOUNT_SID,
        defaults.ADMIN_API_TOKEN,
        realtime=args.realtime,
    )

    def show(run: Run) -> None:
        if args.quiet:
            return
        verdict = "skip" if run.skipped else "pass" if run.passed else "FAIL"
        print(f"[{verdict}] {run.scenario} (run {run.index + 1})", flush=True)

    print(f"[{len(scenarios)} scenarios x {args.repeat} against {target.base_url}]", flush=True)
    runs = run_suite(target, scenarios, args.repeat, args.concurrency, show)
    summaries = reports.summarise(scenarios, runs)
    print(reports.table(summaries))
    if args.json:
        reports.write_json(args.json, summaries, args.min_pass_rate)
    if args.junit:
        Path(args.junit).write_text(reports.junit(summaries, args.min_pass_rate), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(reports.page(summaries, args.min_pass_rate), encoding="utf-8")
    failing = reports.below(summaries, args.min_pass_rate)
    played = [s for s in summaries if s.pass_rate is not None]
    print(
        f"[{len(played) - len(failing)} of {len(played)} scenarios at or above "
        f"{args.min_pass_rate:.0%}; {len(summaries) - len(played)} skipped]"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
