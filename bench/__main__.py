"""``python -m bench``: run every benchmark and print its table."""

from __future__ import annotations

import sys

from bench import console, ingest, logclient, outbound, replay, resume, scale


def main() -> None:
    """Run the benchmarks named on the command line (default: all)."""
    wanted = set(sys.argv[1:]) or {
        "logclient",
        "ingest",
        "outbound",
        "resume",
        "scale",
        "console",
        "replay",
    }
    if "logclient" in wanted:
        logclient.main([])
    if "ingest" in wanted:
        ingest.main([])
    if "outbound" in wanted:
        outbound.main([])
    if "resume" in wanted:
        resume.main([])
    if "scale" in wanted:
        scale.main([])
    if "console" in wanted:
        console.main([])
    if "replay" in wanted:
        replay.main([])


if __name__ == "__main__":
    main()
