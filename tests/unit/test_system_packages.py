"""`scripts/system-packages.sh`, the step `make test` (and CI) takes before anything else:
where it cannot install what is missing, it stops at once with one line that says what to
install and how."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages.sh"


def run(group: str, path: Path) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT), group],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_missing_packages_without_apt_get_stop_with_one_line(tmp_path: Path) -> None:
    # A machine with none of the test tools and no apt-get: only awk is on the PATH.
    awk = shutil.which("awk")
    assert awk is not None
    (tmp_path / "awk").symlink_to(awk)
    done = run("test", tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (
        "missing system packages: redis-server prometheus nodejs npm util-linux; "
        "install them with: sudo apt-get install redis-server prometheus nodejs npm util-linux"
    )


def test_nothing_missing_is_silent(tmp_path: Path) -> None:
    for tool in ("redis-server", "promtool", "npm", "setpriv"):
        (tmp_path / tool).symlink_to("/bin/true")
    done = run("test", tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_an_unknown_group_is_refused(tmp_path: Path) -> None:
    done = run("everything", tmp_path)
    assert done.returncode == 2
    assert "unknown group" in done.stderr
