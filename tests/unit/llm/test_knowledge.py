"""The knowledge as passages: each file format, ids that name their place, bounded sizes,
errors that say where, retrieval (follow-ups, typos, a fact buried among thousands of
passages), `aura-kb`, and a change on disk swapped in without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from aura_llm.config import SAMPLE_KNOWLEDGE_BASE
from aura_llm.kb import main as aura_kb
from aura_llm.knowledge import KnowledgeBaseError
from aura_llm.knowledge.documents import PASSAGE_MAX_CHARS, load_knowledge, read_knowledge
from aura_llm.knowledge.library import KnowledgeIndex, LiveKnowledge
from aura_llm.providers import ChatTurn, Prompt
from aura_llm.providers.local import LocalProvider
from tests.support.knowledge import (
    BURIED_FACT,
    BURIED_ID,
    BURIED_QUESTION,
    with_sample,
    write_policy_directory,
)
from tests.support.pdf import text_pdf

BUSINESS = "business: {name: Elm Clinic, description: a family clinic}\n"


def clinic(root: Path) -> Path:
    """A directory of every format: YAML entries, Markdown, text and PDF."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "clinic.yaml").write_text(
        BUSINESS + "entries:\n"
        "  - topic: vaccinations\n"
        "    questions: ['Do you offer flu shots?']\n"
        "    keywords: [flu, vaccine, jab]\n"
        "    answer: Flu jabs are given every weekday morning.\n"
    )
    (root / "guide.md").write_text(
        "Welcome to the clinic guide.\n\n"
        "# Appointments\n\nBook online or by phone.\n\n"
        "## Cancellations\n\nCancel at least 24 hours ahead or a 20 dollar fee applies.\n\n"
        "# Appointments\n\nA second section under the same heading.\n"
    )
    (root / "notes.txt").write_text("Parking is free behind the clinic.\n\nBikes go by the door.")
    (root / "leaflets").mkdir()
    (root / "leaflets" / "travel.pdf").write_bytes(
        text_pdf([["Travel clinic", "Yellow fever jabs on Thursdays at 2 pm."], ["Page two."]])
    )
    (root / ".hidden.md").write_text("# Secret\n\nNot knowledge.")
    (root / "picture.png").write_bytes(b"\x89PNG")
    return root


def test_a_yaml_file_is_one_passage_per_entry_with_its_questions_keywords_and_answer() -> None:
    knowledge = load_knowledge(SAMPLE_KNOWLEDGE_BASE)
    assert knowledge.business_name == "Bluebird Bakery"
    hours = knowledge.passages[0]
    assert hours.id == "sample_bakery.yaml#opening-hours"
    assert hours.entry is not None
    assert hours.entry.topic == "opening hours"
    assert "Questions: What are your opening hours?" in hours.text
    assert "Keywords: hours, open" in hours.text
    assert "Answer: We are open Monday to Friday" in hours.text


def test_a_directory_of_every_format_gives_passages_named_by_file_and_place(
    tmp_path: Path,
) -> None:
    knowledge = load_knowledge(clinic(tmp_path / "kb"))
    assert knowledge.business_name == "Elm Clinic"
    by_id = {p.id: p for p in knowledge.passages}
    assert list(by_id) == [
        "clinic.yaml#vaccinations",
        "guide.md#guide",
        "guide.md#appointments",
        "guide.md#cancellations",
        "guide.md#appointments-2",
        "leaflets/travel.pdf#page-1",
        "leaflets/travel.pdf#page-2",
        "notes.txt#notes",
    ]
    assert by_id["guide.md#cancellations"].title == "Appointments > Cancellations"
    assert "24 hours ahead" in by_id["guide.md#cancellations"].text
    assert "Yellow fever jabs on Thursdays at 2 pm." in by_id["leaflets/travel.pdf#page-1"].text
    assert "Bikes go by the door." in by_id["notes.txt#notes"].text
    # The same files give the same ids on every load.
    assert [p.id for p in load_knowledge(tmp_path / "kb").passages] == list(by_id)


def test_long_sections_are_cut_into_bounded_passages_between_sentences(tmp_path: Path) -> None:
    sentence = "The proofing room is kept at twenty six degrees for the morning bake. "
    (tmp_path / "b.yaml").write_text(BUSINESS)
    (tmp_path / "long.md").write_text("# Proofing\n\n" + sentence * 60 + "\n\nShort tail.")
    passages = load_knowledge(tmp_path).passages
    assert len(passages) > 3
    assert all(len(p.text) <= PASSAGE_MAX_CHARS for p in passages)
    assert [p.id for p in passages[:3]] == [
        "long.md#proofing",
        "long.md#proofing-2",
        "long.md#proofing-3",
    ]
    # Every passage starts with its heading and cuts between sentences.
    assert all(p.text.startswith("Proofing\n") for p in passages)
    assert all(p.text.rstrip().endswith(".") for p in passages)


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"a.md": "# Only text"}, "no YAML file names the business"),
        ({"b.yaml": BUSINESS, "bad.yaml": "entries: [{topic: t}]"}, "bad.yaml: entries[0]"),
        ({"b.yaml": BUSINESS, "broken.pdf": "not a pdf"}, "broken.pdf: not a readable PDF"),
        ({"b.yaml": BUSINESS, "x.yml": "business: [unclosed"}, "x.yml is not valid YAML"),
    ],
)
def test_a_bad_directory_says_which_file_and_where(
    tmp_path: Path, files: dict[str, str], says: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(KnowledgeBaseError, match=says.replace("[", r"\[")):
        load_knowledge(tmp_path)


def test_aura_kb_check_lists_passages_or_one_line_per_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ok:
        aura_kb(["check", str(clinic(tmp_path / "good"))])
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "guide.md#cancellations" in out
    assert "8 passages" in out
    assert "Elm Clinic" in out

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.yaml").write_text("entries: [{topic: t}]")
    (bad / "b.yml").write_text("business: [unclosed")
    with pytest.raises(SystemExit) as failed:
        aura_kb(["check", str(bad)])
    assert failed.value.code == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3  # each file's problem, and no business named
    assert errors[0].startswith("error: a.yaml: entries[0]")
    assert "b.yml" in errors[1]


def test_aura_kb_ask_prints_the_chosen_passages_with_scores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        aura_kb(["ask", str(SAMPLE_KNOWLEDGE_BASE), "are you open on saturday"])
    first = capsys.readouterr().out.splitlines()[0].split()
    assert first[1:] == ["sample_bakery.yaml#opening-hours", "answers", "sent"]
    assert float(first[0]) > 0


# --- retrieval -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> LiveKnowledge:
    root = tmp_path_factory.mktemp("policies")
    write_policy_directory(with_sample(root), documents=1000)
    return LiveKnowledge(root)


def test_a_fact_buried_in_thousands_of_passages_is_found_and_the_request_stays_bounded(
    policies: LiveKnowledge,
) -> None:
    assert len(policies.knowledge.passages) > 5000
    turn = policies.index.for_turn(BURIED_QUESTION)
    assert turn.passage_ids[0] == BURIED_ID
    assert BURIED_FACT in turn.block
    assert len(turn.block) < 4000 + 1000  # the passages within KNOWLEDGE_MAX_CHARS, a header


def test_the_local_provider_answers_the_buried_fact_from_the_same_directory(
    policies: LiveKnowledge,
) -> None:
    local = LocalProvider(policies, "Aura")
    assert local.answer(Prompt("CA1", "Aura", "", (), BURIED_QUESTION)) == BURIED_FACT
    # The entries still answer as they always have, beside the documents.
    hours = local.answer(Prompt("CA1", "Aura", "", (), "are you open on saturday"))
    assert hours.startswith("We are open Monday to Friday")
    assert "don't have an answer" in local.answer(
        Prompt("CA1", "Aura", "", (), "do you sell pizza")
    )


def test_a_short_follow_up_is_searched_with_the_previous_question() -> None:
    index = KnowledgeIndex(load_knowledge(SAMPLE_KNOWLEDGE_BASE), top_k=4, max_chars=400)
    alone = index.for_turn("and what about Mondays?")
    assert alone.retrieval.best is None
    follow_up = index.for_turn("and what about Mondays?", previous="when are you open")
    assert follow_up.passage_ids[0] == "sample_bakery.yaml#opening-hours"
    assert follow_up.retrieval.best is not None


def test_misrecognised_words_still_find_their_passage(tmp_path: Path) -> None:
    knowledge = load_knowledge(clinic(tmp_path))
    index = KnowledgeIndex(knowledge, top_k=4, max_chars=400)
    assert index.for_turn("what is the cancelation fee").passage_ids[0] == "guide.md#cancellations"
    turn = index.for_turn("when are the yelow fever jabs")
    assert turn.passage_ids[0] == "leaflets/travel.pdf#page-1"


def test_knowledge_that_fits_is_sent_whole_and_identical_on_every_turn() -> None:
    index = KnowledgeIndex(load_knowledge(SAMPLE_KNOWLEDGE_BASE), top_k=4, max_chars=4000)
    first = index.for_turn("when are you open")
    second = index.for_turn("where can I park", previous="when are you open")
    assert first.block == second.block
    assert "Saturday from 8 to 4" in first.block
    assert "four free customer spaces" in first.block
    assert first.block.startswith("Reference data about Bluebird Bakery")
    assert "not instructions" in first.block
    # Too little room: only the passages chosen for the turn.
    small = KnowledgeIndex(load_knowledge(SAMPLE_KNOWLEDGE_BASE), top_k=2, max_chars=600)
    turn = small.for_turn("where can I park")
    assert turn.passage_ids[0] == "sample_bakery.yaml#parking"
    assert "four free customer spaces" in turn.block
    assert "Saturday from 8 to 4" not in turn.block


# --- change without restart ----------------------------------------------------------------


def _reloads(outcome: str) -> float:
    value = REGISTRY.get_sample_value("aura_llm_knowledge_reloads_total", {"outcome": outcome})
    return value or 0.0


async def test_a_change_on_disk_is_swapped_in_and_a_bad_one_keeps_the_last_good(
    tmp_path: Path,
) -> None:
    root = clinic(tmp_path / "kb")
    live = LiveKnowledge(root)
    local = LocalProvider(live, "Aura")
    outcomes: asyncio.Queue[bool] = asyncio.Queue()
    live.on_reload = outcomes.put_nowait
    watching = asyncio.create_task(live.watch())
    ok_before, errors_before = _reloads("ok"), _reloads("error")
    asked = Prompt("CA1", "Aura", "", (), "where can I park")
    try:
        await asyncio.wait_for(live.watching.wait(), 20)
        assert local.answer(asked).startswith("Parking is free")
        (root / "notes.txt").write_text("Parking costs 2 dollars an hour behind the clinic.")
        assert await asyncio.wait_for(outcomes.get(), 20) is True
        assert local.answer(asked) == "Parking costs 2 dollars an hour behind the clinic."

        (root / "clinic.yaml").write_text("entries: [{topic: broken}]")
        assert await asyncio.wait_for(outcomes.get(), 20) is False
        assert local.answer(asked) == "Parking costs 2 dollars an hour behind the clinic."
        assert local.knowledge.business_name == "Elm Clinic"
    finally:
        watching.cancel()
    assert (_reloads("ok") - ok_before, _reloads("error") - errors_before) == (1, 1)


def test_a_bad_knowledge_base_at_start_raises_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("entries: [{topic: t}]")
    knowledge, problems = read_knowledge(tmp_path)
    assert knowledge is None
    assert len(problems) == 2
    with pytest.raises(KnowledgeBaseError) as raised:
        LiveKnowledge(tmp_path)
    assert "\n" not in str(raised.value)


def test_the_local_summary_names_the_topics_asked_about() -> None:
    local = LocalProvider.from_file(SAMPLE_KNOWLEDGE_BASE, "Aura")
    transcript = (
        ChatTurn("assistant", "Hello!"),
        ChatTurn("user", "where can I park"),
        ChatTurn("assistant", "Behind the shop."),
        ChatTurn("user", "and are you open on sunday"),
    )
    assert local.summary(transcript) == "The caller asked about parking and opening hours."
