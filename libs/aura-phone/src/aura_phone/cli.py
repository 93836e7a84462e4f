"""`aura-call`: call an Aura deployment the way Twilio would, from a terminal or a script.

  aura-call                                   # interactive, against http://localhost:8000
  aura-call --url https://calls.example.com --token $TWILIO_AUTH_TOKEN
  aura-call --script call.yaml                # exits non-zero when an expectation fails
  aura-call --relay                           # expect ConversationRelay (VOICE_MODE=relay)
  aura-call --realtime                        # Media Streams audio (VOICE_MODE=realtime)
  aura-call --language es-ES                  # a Spanish caller (LANGUAGES=en-US,es-ES)
  aura-call --twilio-api-port 8090            # recordings (CALL_RECORDING=on) go to a fake
                                              # REST API: TWILIO_API_BASE_URL=http://127.0.0.1:8090
  aura-call --press-at-prompts 9              # refuse the recording at its notice

Interactive: what you type is what the caller says; `#5` presses 5; an empty line is
silence; Ctrl-C hangs up. Over ConversationRelay, answers print token by token with their
timing, and typing while the assistant speaks interrupts it. With --realtime, what you
type is spoken as audio (espeak-ng, or a tone without it) over Twilio Media Streams.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from pathlib import Path

from aura_phone.relay import Action
from aura_phone.rest import FakeTwilioRest, PlacedCall
from aura_phone.script import CallerSettings, ScriptError, Step, load_script, since
from aura_phone.simulator import Call, CallError, Input, Turn


def run_script(call: Call, steps: list[Step], path: str = "", answered_by: str = "human") -> None:
    """Play the steps; raise ScriptError at the first one that does not go as written.
    With `path`, the call is one the deployment placed: the script answers it there."""
    position = 0  # the step whose answer the next turn carries
    answered: Turn | None = None
    if steps[0].action is not None:
        steps = [Step(None), *steps]

    def answer(turn: Turn) -> Input:
        nonlocal position, answered
        answered = turn
        steps[position].check(position, turn)
        if steps[position].ends_call:
            raise ScriptError(f"step {position}: expected the call to end, it went on")
        position += 1
        if position >= len(steps):
            return Input("hangup")
        action = steps[position].action
        if action is None:
            raise ScriptError(
                f"step {position}: a step after the first needs say, press or silence"
            )
        return action

    if path:
        call.pick_up(path, answer, answered_by)
    else:
        call.start(answer)
    if position >= len(steps):
        return  # every step played; the caller hung up
    # The deployment ended the call while step `position` was the latest: check it against
    # what was heard since the caller last spoke.
    steps[position].check(position, since(call.turns, answered))
    if position < len(steps) - 1:
        raise ScriptError(f"the call ended after step {position}, before the script did")


def interactive(call: Call, path: str = "") -> None:
    # One reader of what you type. In a relay session it is read at any moment, and typing
    # while the assistant speaks interrupts it, as a caller talking over it would; at a
    # <Gather> it is the answer to what was just said.
    typed: queue.Queue[Action] = queue.Queue()

    def read_lines() -> None:
        while True:
            try:
                choice = Input.parse(input())
            except (EOFError, OSError):  # stdin closed, or none at all
                choice = Input("hangup")
            typed.put(Action(choice.kind, choice.value))
            if choice.kind == "hangup":
                return

    def answer(turn: Turn) -> Input:
        print(f"        ({turn.seconds * 1000:.0f} ms)")
        print("you> ", end="", flush=True)
        action = typed.get()
        return Input(action.kind, action.value)

    def show(token: str, seconds: float) -> None:
        print(f"aura> {token.strip()}   ({seconds * 1000:.0f} ms)", flush=True)

    call.typed, call.on_token = typed, show
    threading.Thread(target=read_lines, daemon=True).start()
    try:
        if path:  # a call the deployment placed, answered by you
            call.pick_up(path, answer)
        else:
            call.start(answer)
    except KeyboardInterrupt:
        print("\n[hanging up]")
        call.hang_up()
    if call.turns:
        print(f"        ({call.turns[-1].seconds * 1000:.0f} ms)")
    print("[call ended]")


def answer_calls(args: argparse.Namespace, defaults: CallerSettings) -> int:
    """Play Twilio's REST API until the deployment places a call, then be its callee."""
    placed: queue.Queue[PlacedCall] = queue.Queue()
    rest = FakeTwilioRest(
        defaults.TWILIO_ACCOUNT_SID, args.token, on_call=placed.put, callback_base=args.url
    )
    url = rest.start(port=args.twilio_api_port or 0)
    print(f"[Twilio's REST API on {url}: set TWILIO_API_BASE_URL={url} and place a call]")
    try:
        call_placed = placed.get()
        steps = load_script(args.script)[1] if args.script else []
        call = Call(
            args.url,
            args.token,
            args.public_url,
            caller=call_placed.params.get("From", ""),
            callee=call_placed.params.get("To", ""),
            call_sid=call_placed.sid,
            account_sid=defaults.TWILIO_ACCOUNT_SID,
            on_say=(lambda text: None) if args.quiet else (lambda text: print(f"aura> {text}")),
            relay=args.relay,
            prompt_key=args.press_at_prompts,
            on_end=rest.end_call,
        )
        print(f"[{call_placed.params.get('To')} is ringing: answered by a {args.answer_calls}]")
        answered_by = "human" if args.answer_calls == "human" else "machine_end_beep"
        if steps:
            run_script(call, steps, path=call_placed.answer_path, answered_by=answered_by)
            print(f"[script passed: {len(steps)} steps, {len(call.turns)} requests]")
        elif answered_by == "human":
            interactive(call, path=call_placed.answer_path)
        else:
            call.pick_up(call_placed.answer_path, lambda turn: Input("hangup"), answered_by)
            print("[the machine recorded the message]")
    except (CallError, ScriptError) as error:
        print(f"aura-call: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        rest.stop()
    return 0


def realtime_call(args: argparse.Namespace, defaults: CallerSettings) -> int:
    import asyncio

    from aura_phone.media import StreamError, interactive
    from aura_phone.twilio import Twilio, new_call_sid

    twilio = Twilio(
        auth_token=args.token,
        public_base_url=args.public_url,
        account_sid=defaults.TWILIO_ACCOUNT_SID,
        caller=args.caller,
        callee=args.callee,
    )
    try:
        call = interactive(
            args.url, twilio, new_call_sid(), defaults.ADMIN_API_TOKEN, args.press_at_prompts
        )
        asyncio.run(call)
    except StreamError as error:
        print(f"aura-call: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    defaults = CallerSettings()
    parser = argparse.ArgumentParser(prog="aura-call", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--url",
        default=defaults.url,
        help="where the deployment listens (default: $AURA_BASE_URL, else localhost:$PORT)",
    )
    parser.add_argument(
        "--token",
        default=defaults.TWILIO_AUTH_TOKEN,
        help="Twilio auth token to sign with (default: $TWILIO_AUTH_TOKEN, or from .env)",
    )
    parser.add_argument(
        "--public-url",
        default=defaults.PUBLIC_BASE_URL,
        help="the URL to sign for, when the deployment checks another one (default: "
        "$PUBLIC_BASE_URL, or from .env)",
    )
    parser.add_argument(
        "--from",
        dest="caller",
        help="the caller's number (default: the script's, else +15551230000)",
    )
    parser.add_argument(
        "--to", dest="callee", help="the number called (default: the script's, else +15559870000)"
    )
    parser.add_argument("--script", type=Path, help="a YAML script of steps and expectations")
    parser.add_argument("--quiet", action="store_true", help="print only failures")
    parser.add_argument(
        "--relay",
        action="store_true",
        help="expect ConversationRelay (VOICE_MODE=relay); without it, either mode is followed",
    )
    parser.add_argument(
        "--answer-calls",
        choices=["human", "machine"],
        help="wait for the deployment to place a call (POST /api/calls) and answer it as a "
        "person or an answering machine: serves Twilio's REST API for placing calls on "
        "--twilio-api-port; point the deployment's TWILIO_API_BASE_URL at it",
    )
    parser.add_argument(
        "--twilio-api-port",
        type=int,
        default=None,
        help="serve Twilio's REST API (placed calls, call recordings) on this port, 0 for "
        "any free one; point the deployment's TWILIO_API_BASE_URL at it",
    )
    parser.add_argument(
        "--press-at-prompts",
        default="",
        metavar="KEY",
        help="the key to press at a keypad-only prompt (the recording notice's, to refuse "
        "it); default: none",
    )
    parser.add_argument(
        "--language",
        default="",
        help="the caller's language (e.g. es-ES): chosen by key when the welcome offers it, "
        "spoken over ConversationRelay",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play Twilio Media Streams (VOICE_MODE=realtime): speak as audio, hear audio",
    )
    args = parser.parse_args(argv)
    given = {"from": args.caller, "to": args.callee}  # the command line's win over a script's
    args.caller = args.caller or "+15551230000"
    args.callee = args.callee or "+15559870000"
    if args.answer_calls:
        return answer_calls(args, defaults)
    if args.realtime:
        return realtime_call(args, defaults)

    try:
        steps: list[Step] = []
        if args.script:
            numbers, steps = load_script(args.script)
            args.caller = given["from"] or numbers.get("from", args.caller)
            args.callee = given["to"] or numbers.get("to", args.callee)
            args.language = numbers.get("language", args.language)
        call = Call(
            args.url,
            args.token,
            args.public_url,
            caller=args.caller,
            callee=args.callee,
            account_sid=defaults.TWILIO_ACCOUNT_SID,
            on_say=(lambda text: None) if args.quiet else (lambda text: print(f"aura> {text}")),
            relay=args.relay,
            language=args.language,
            prompt_key=args.press_at_prompts,
        )
        if args.twilio_api_port is not None:
            rest = FakeTwilioRest(defaults.TWILIO_ACCOUNT_SID, args.token, callback_base=args.url)
            api = rest.start(port=args.twilio_api_port)
            print(f"[Twilio's REST API on {api}: the deployment's TWILIO_API_BASE_URL]")
            call.on_end = rest.end_call
        if args.script:
            run_script(call, steps)
            if not args.quiet:
                print(f"[script passed: {len(steps)} steps, {len(call.turns)} requests]")
        else:
            interactive(call)
    except (CallError, ScriptError) as error:
        print(f"aura-call: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
