"""`python -m tools.train`, with every batch's rows recorded per process (for the multi-process test).

Run as `torchrun --nproc_per_node 2 -m tests.trace_rows <tools.train options>` with TRACE_DIR set: each process
(and each of its DataLoader workers) appends one JSON line per batch, [[split, row], ...], to
TRACE_DIR/<rank>-<pid>.jsonl.
"""

import json
import os
import sys

from helpers import prepare
from tools.train import main

_collate = prepare.SpeechCollator.__call__


def _traced(self, rows):
    path = os.path.join(os.environ["TRACE_DIR"], f"{os.environ.get('RANK', '0')}-{os.getpid()}.jsonl")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps([[row.get("split"), row.get("row")] for row in rows]) + "\n")
    return _collate(self, rows)


prepare.SpeechCollator.__call__ = _traced

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
