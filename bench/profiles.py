"""Where a service's CPU goes under load: py-spy samples each process (when it holds the
GIL, so running Python rather than waiting) while the bench
drives it, and the summary lists the functions that most samples were in (inclusive) and
ended in (self). py-spy reads the processes from outside (`--nonblocking`), so the
services run unmodified; the sampling itself costs the machine some CPU, so the figures of
a profiled run are not the bench's figures.

Usage: python -m bench.profiles .bench/profile-telephony.txt [--top 25]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# A py-spy raw frame: "function (path/to/module.py:line)"; --function makes line the def's.
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: make setup installs it")
    return found


@contextlib.contextmanager
def sampling(pids: dict[str, int], seconds: float, out_dir: Path) -> Iterator[dict[str, Path]]:
    """py-spy on each process for `seconds` (or until the block ends), raw stacks into
    out_dir/profile-<name>.txt."""
    out_dir.mkdir(exist_ok=True)
    outputs = {name: out_dir / f"profile-{name}.txt" for name in pids}
    spies = [
        subprocess.Popen(
            [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--function",
                "--nonblocking",
                "--gil",
                "--rate",
                "200",
                "--duration",
                str(int(seconds)),
                "--output",
                str(outputs[name]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield outputs
    finally:
        for spy in spies:
            try:
                spy.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()


def _label(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    # Keep the package and the module: "grpc/aio/_call.py" rather than a full path.
    short = "/".join(Path(file).parts[-2:]) if file else "?"
    return f"{match['function']} ({short})"


def summary(path: Path, top: int = 20) -> str:
    """The `top` functions by inclusive and by self share of samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"{path.name}: {total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"  {title}:")
        lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in counter.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for file in args.files:
        print(summary(file, args.top))


if __name__ == "__main__":
    main()
