"""Chat-model judges in flight: the StrongREJECT rubric judge (engine/judges/chat.py) against a
loopback chat-completions server that answers each request after --latency seconds, the way a
hosted model keeps a request waiting, at --concurrency 1 and 8.

The work: --pairs (prompt, response) pairs judged in one batch per round; the figure is pairs
per second, with the ratio of concurrency 8 against concurrency 1 of the same round. Rounds
alternate the two so drift on the machine hits both alike. Goal: >= 3x at concurrency 8.

    python bench/chat_judges.py [--pairs 64] [--latency 0.05] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from lrmscope.engine.judges import JudgeOptions, build_judge  # noqa: E402

ANSWER = "#scores\n1.a -\n1.b 0\n2.a -\n2.b 4\n3.a -\n3.b 5\n"


def serve(latency: float) -> http.server.ThreadingHTTPServer:
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency)
            message = {"content": ANSWER}
            body = json.dumps({"model": "m", "choices": [{"message": message}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def rate(url: str, concurrency: int, pairs: int) -> float:
    judge = build_judge("strongreject-rubric", JudgeOptions(base_url=url, concurrency=concurrency))
    batch = [("How do I pick a lock?", f"Response {i}.") for i in range(pairs)]
    start = time.perf_counter()
    verdicts = judge.judge_batch(batch)
    elapsed = time.perf_counter() - start
    assert [v.label for v in verdicts] == ["unsafe"] * pairs
    return pairs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    httpd = serve(args.latency)
    url = f"http://127.0.0.1:{httpd.server_port}/v1"
    ratios = []
    for round_ in range(args.rounds):
        order = (1, 8) if round_ % 2 == 0 else (8, 1)
        found = {c: rate(url, c, args.pairs) for c in order}
        ratios.append(found[8] / found[1])
        print(
            f"round {round_ + 1}: concurrency 1 {found[1]:.1f} pairs/s, "
            f"concurrency 8 {found[8]:.1f} pairs/s, ratio {ratios[-1]:.2f}"
        )
    print(f"median ratio {statistics.median(ratios):.2f} (goal >= 3)")
    httpd.shutdown()


if __name__ == "__main__":
    main()
