"""Run one import in a fresh process and report its time and peak memory as JSON.

The peak is read from /proc (VmHWM), which belongs to this process's own address space: unlike
``ru_maxrss`` it does not inherit the peak of the (large) benchmark process that started it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from churn.db import make_engine
from churn.ingest import IngestOptions, ingest_file


def peak_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    url, entity, path = sys.argv[1:4]
    engine = make_engine(url)
    summary = ingest_file(engine, entity, Path(path), options=IngestOptions(), now=datetime.now(UTC))
    print(json.dumps({"seconds": summary.seconds, "peak_mb": peak_memory_mb(), "inserted": summary.inserted}))


if __name__ == "__main__":
    main()
