"""`aura-call`, the phone simulator, against the target deployment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aura_phone.cli import main
from tests.support.twilio import TwilioPlayer

SCRIPT = Path(__file__).parent / "scripts" / "bakery.yaml"


def target(twilio: TwilioPlayer) -> list[str]:
    url = str(twilio.client.base_url).rstrip("/")
    args = ["--url", url, "--token", twilio.auth_token, "--from", twilio.caller]
    return [*args, "--public-url", twilio.public_base_url] if twilio.public_base_url else args


def test_the_bakery_script_passes(twilio: TwilioPlayer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*target(twilio), "--script", str(SCRIPT)]) == 0
    out = capsys.readouterr().out
    assert "aura> We are open Monday to Friday" in out
    assert "[transferring the call to +15555550111]" in out  # the manager, from the tools file
    # A warm transfer (the default) adds its own requests: the briefing and the dial's end.
    assert re.search(r"\[script passed: 10 steps, 1[02] requests\]", out), out


def test_a_failed_expectation_exits_non_zero(
    twilio: TwilioPlayer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "wrong.yaml"
    script.write_text("steps:\n  - say: when are you open\n    hear: we sell pizza\n")
    assert main([*target(twilio), "--script", str(script), "--quiet"]) == 1
    assert "expected to hear 'we sell pizza'" in capsys.readouterr().err


def test_a_wrong_token_is_reported(
    twilio: TwilioPlayer, capsys: pytest.CaptureFixture[str]
) -> None:
    if not twilio.auth_token:
        pytest.skip("the target does not check signatures")
    url = str(twilio.client.base_url).rstrip("/")
    assert main(["--url", url, "--token", "not-the-token", "--script", str(SCRIPT)]) == 1
    assert "refused the signature (403)" in capsys.readouterr().err
