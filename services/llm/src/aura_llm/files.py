"""Reading the operator's YAML files (the knowledge base, the tools file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, what: str, error: type[ValueError]) -> Any:
    """The parsed file; raises `error` saying which file (`what`) could not be read."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        # One line, so that a log or `aura-kb check` gives one line per problem.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise error(f"{what} {path} is not valid YAML{where}: {problem}") from exc
