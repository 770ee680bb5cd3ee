"""Remote eval throughput: `lrmscope eval` against two local llama-cpp-python servers (the embedded
model, one thread each), at --concurrency 1, 4 and 16.

The work: the first --prompts prompts of the demo set, modes default and zerothink, K samples
each, sampling at temperature 0.6, at most --tokens new tokens per sample, no judge. Each eval is
a new run in one database; its time is the run's own span in the database (rendering, requests,
saving), and the figure is samples per second, with the ratio against concurrency 1 of the same
round. Rounds alternate the concurrencies so drift on the machine hits all alike. llama-cpp-python's
server decodes one request at a time, so concurrency here overlaps client work, network and the
two servers; a batching server (vLLM, llama-server -np N) gains far more from it.

    python bench/remote_concurrency.py [--prompts 4] [--samples 2] [--tokens 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from lrmscope.engine.models import embedded_model_path  # noqa: E402
from tests.support.servers import ALIAS, Server  # noqa: E402

CONCURRENCY = (1, 4, 16)


def one_eval(db: Path, urls: list[str], concurrency: int, args) -> float:
    """Samples per second of one new eval run."""
    command = [
        sys.executable,
        "-m",
        "lrmscope",
        "eval",
        "--dataset",
        "demo",
        "--limit",
        str(args.prompts),
        "--modes",
        "default,zerothink",
        "--samples",
        str(args.samples),
        "--max-tokens",
        str(args.tokens),
        "--judge",
        "none",
        "--new-run",
        "--db",
        str(db),
        "--concurrency",
        str(concurrency),
        "--served-model",
        ALIAS,
        "--template-from",
        str(embedded_model_path()),
    ]
    for url in urls:
        command += ["--endpoint", url]
    subprocess.run(command, check=True, capture_output=True)
    conn = sqlite3.connect(db)
    started, ended, samples = conn.execute(
        "SELECT r.started_at, r.ended_at, count(s.id) FROM runs r JOIN samples s"
        " ON s.run_id = r.id WHERE r.id = (SELECT max(id) FROM runs) AND s.status = 'done'"
    ).fetchone()
    conn.close()
    span = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
    return samples / span.total_seconds()


def measure(urls: list[str], args) -> dict[int, list[float]]:
    """Samples per second of each round, per concurrency."""
    results: dict[int, list[float]] = {c: [] for c in CONCURRENCY}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        for _ in range(args.rounds):
            for concurrency in CONCURRENCY:
                results[concurrency].append(one_eval(db, urls, concurrency, args))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        servers = [Server(Path(logs) / f"server{i}.log") for i in range(2)]
        try:
            for server in servers:
                server.start()
            results = measure([server.url for server in servers], args)
        finally:
            for server in servers:
                server.stop()
    work = args.prompts * 2 * args.samples
    print(
        f"{work} samples per run, {args.tokens} tokens max, 2 servers; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    base = statistics.median(results[1])
    for concurrency in CONCURRENCY:
        median = statistics.median(results[concurrency])
        print(
            f"concurrency {concurrency:>2}: {median:6.2f} samples/s  ({median / base:.2f}x)  "
            f"rounds: {', '.join(f'{r:.2f}' for r in results[concurrency])}"
        )


if __name__ == "__main__":
    main()
