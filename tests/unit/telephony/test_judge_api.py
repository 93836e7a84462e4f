"""POST /api/calls/{call_sid}/judge, aura-eval's judge: the stored call goes to the llm
service's Judge RPC over real gRPC; without a model its criteria come back skipped."""

from __future__ import annotations

import json

from aura_llm.providers import Completion, Prompt, Provider
from tests.support.llm import local
from tests.support.twilio import new_call_sid
from tests.unit.telephony.conftest import Rig, RigFactory
from tests.unit.telephony.test_voice_webhooks import speak

ADMIN = {"Authorization": "Bearer admin-secret"}


class Judging(Provider):
    """Answers calls as the local provider does, and judges every criterion met."""

    name = "judging"
    model = "judge-1"
    min_attempt_seconds = 0.05

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        if prompt.task == "judge":
            self.read = prompt.user_text
            return Completion(json.dumps({"verdicts": [{"criterion": 1, "pass": True}]}))
        return await local().generate(prompt, budget)


async def a_call(rig: Rig) -> str:
    call_sid = new_call_sid()
    await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid))
    await speak(rig, call_sid, "What time do you open on Saturday?")
    return call_sid


async def test_the_judge_reads_the_stored_call(make_rig: RigFactory) -> None:
    judging = Judging()
    rig = await make_rig(provider=judging, ADMIN_API_TOKEN="admin-secret")
    call_sid = await a_call(rig)
    criteria = {"criteria": ["The assistant gave the Saturday hours."]}
    response = await rig.client.post(f"/api/calls/{call_sid}/judge", json=criteria, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["verdicts"][0]["verdict"] == "pass"
    assert response.json()["provider"] == "judging"
    assert "Caller: What time do you open on Saturday?" in judging.read


async def test_without_a_model_the_criteria_are_skipped(make_rig: RigFactory) -> None:
    rig = await make_rig(ADMIN_API_TOKEN="admin-secret")
    call_sid = await a_call(rig)
    criteria = {"criteria": ["The assistant was polite."]}
    response = await rig.client.post(f"/api/calls/{call_sid}/judge", json=criteria, headers=ADMIN)
    assert response.status_code == 200
    assert [v["verdict"] for v in response.json()["verdicts"]] == ["skipped"]
    unknown = await rig.client.post(
        f"/api/calls/{new_call_sid()}/judge", json=criteria, headers=ADMIN
    )
    assert unknown.status_code == 404
    anonymous = await rig.client.post(f"/api/calls/{call_sid}/judge", json=criteria)
    assert anonymous.status_code == 401
    empty = await rig.client.post(
        f"/api/calls/{call_sid}/judge", json={"criteria": []}, headers=ADMIN
    )
    assert empty.status_code == 422
