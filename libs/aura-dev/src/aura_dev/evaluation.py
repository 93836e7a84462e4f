"""`make eval`: the three services started as `make run` starts them (their settings from
the environment or ./.env), on free ports so that a running `make run` is left alone, with
an admin token of their own when none is set (the transcript checks and the judge need
one); then aura-eval with the given arguments (default: the sample suite), and the
services stopped. Exits with aura-eval's status."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

from aura_dev.stack import Stack
from aura_phone import eval_cli
from aura_phone.script import CallerSettings

SAMPLE_SUITE = "evals/sample-bakery"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--suite" not in args:
        args = ["--suite", SAMPLE_SUITE, *args]
    env = {}
    if not CallerSettings().ADMIN_API_TOKEN:
        env["ADMIN_API_TOKEN"] = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="aura-eval-") as logs:
        stack = Stack(env=env, log_dir=Path(logs), cwd=Path.cwd())
        try:
            with stack.running():
                os.environ.update(env)  # aura-eval reads it as the services do
                print(f"[Aura started for the evaluation at {stack.base_url}]", flush=True)
                return eval_cli.main(["--url", stack.base_url, *args])
        except RuntimeError as error:
            print(f"Aura did not start: {error}", file=sys.stderr)
            for log in sorted(Path(logs).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-2000:]}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
