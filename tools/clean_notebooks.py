"""Keep committed notebooks clean: outputs of the default run stay, execution noise and machine paths go.

    python -m tools.clean_notebooks notebooks/*.ipynb          # clean in place
    python -m tools.clean_notebooks --check notebooks/*.ipynb  # list what is not clean, exit 1 if any
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

KERNELSPEC = {"name": "whisper-curriculum", "display_name": "Python (whisper-curriculum)", "language": "python"}
KEEP_CELL_METADATA = ("tags",)
# Absolute paths of a user's machine must never reach a committed notebook.
MACHINE_PATH = re.compile(r"(/home/[^/\s]+|/root/|/Users/[^/\s]+|/tmp/|/work/|[A-Z]:\\\\Users)")


def clean(nb: dict) -> dict:
    """Return the notebook with papermill/execution metadata and widget state removed, cells numbered 1..n."""
    nb["metadata"] = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
    }
    count = 0
    for cell in nb["cells"]:
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA}
        cell.pop("id", None)
        if cell["cell_type"] == "code":
            # nbval refuses stored outputs without an execution count: number the cells 1..n, the same every run.
            count += 1
            cell["execution_count"] = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = count
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def problems(path: Path) -> list[str]:
    """What keeps a committed notebook from being clean (empty when it is)."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    found = []
    if json.dumps(clean(json.loads(text)), indent=1, ensure_ascii=False) + "\n" != text:
        found.append("not cleaned (run: make clean-notebooks)")
    for i, cell in enumerate(nb["cells"]):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            found.append(f"cell {i}: papermill injected parameters (commit the default run only)")
        for output in cell.get("outputs", []):
            blob = json.dumps(output, ensure_ascii=False)
            match = MACHINE_PATH.search(blob)
            if match:
                found.append(f"cell {i}: output holds a machine path ({match.group(0)!r})")
            if output.get("output_type") == "error":
                found.append(f"cell {i}: output is an error")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not change")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.notebooks:
        if args.check:
            for problem in problems(path):
                print(f"{path}: {problem}")
                bad += 1
        else:
            nb = clean(json.loads(path.read_text(encoding="utf-8")))
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
