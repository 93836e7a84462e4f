"""Generated knowledge for tests and the bench: a directory of many Markdown documents of
plausible, varied shop policy, with one fact buried among them."""

from __future__ import annotations

import random
from pathlib import Path

from aura_llm.config import SAMPLE_KNOWLEDGE_BASE

BURIED_QUESTION = "When is the sourdough masterclass held?"
BURIED_FACT = (
    "The sourdough masterclass runs on the first Tuesday of each month at 6:30 pm "
    "in the back kitchen, and costs 35 dollars."
)
BURIED_ID = "policies/doc-0777.md#classes-and-workshops"

_SUBJECTS = (
    "returns refunds exchanges gift cards loyalty points vouchers receipts invoices "
    "uniforms suppliers flour butter eggs ovens cleaning hygiene inspections staff rota "
    "training fire safety first aid keys alarms deliveries vans drivers routes packaging "
    "labels allergens recycling compost waste energy lighting heating ventilation insurance "
    "accounts payroll holidays sickness uniforms parking permits signage windows displays "
    "music wifi printers tills cash floats banking pricing discounts promotions newsletters"
).split()
_VERBS = "check record replace order clean store label report review count sign".split()
_WHEN = "daily weekly monthly each morning each evening before opening after closing".split()


def _paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(2, 4)):
        subject, other = rng.sample(_SUBJECTS, 2)
        sentences.append(
            f"Staff {rng.choice(_VERBS)} the {subject} and the {other} "
            f"{rng.choice(_WHEN)}, following the {rng.choice(_SUBJECTS)} checklist."
        )
    return " ".join(sentences)


def write_policy_directory(root: Path, documents: int, sections: int = 5, seed: int = 7) -> Path:
    """`documents` Markdown files of `sections` sections each under `root/policies`, the
    business named in `root/business.yaml`; document 777 (when there are that many) holds
    the buried fact in its "Classes and workshops" section."""
    rng = random.Random(seed)
    folder = root / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "business.yaml").write_text(
        "business: {name: Bluebird Bakery, description: a neighbourhood bakery}\n"
    )
    for number in range(documents):
        lines = [f"# Policy {number}", ""]
        for section in range(sections):
            subject = rng.choice(_SUBJECTS)
            lines += [f"## {subject.capitalize()} {section}", "", _paragraph(rng), ""]
        if number == 777:
            lines += ["## Classes and workshops", "", BURIED_FACT, ""]
        (folder / f"doc-{number:04d}.md").write_text("\n".join(lines))
    return root


def with_sample(root: Path) -> Path:
    """`root` with the sample bakery's entries beside whatever else it holds."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bakery.yaml").write_text(SAMPLE_KNOWLEDGE_BASE.read_text())
    return root
