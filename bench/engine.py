"""`python -m bench.engine`: lines per second through the extraction engine on one core.

Uses the published nginx example rules on generated access lines (what the reference agent runs),
and reports the memory the process holds afterwards. It needs no Django: run it anywhere the
repository and google-re2 are.
"""

import argparse
import random
import resource
import time

from edge.agent.loggen import line
from metrics import engine
from metrics.examples import NGINX_EXAMPLE

NGINX_RULES = NGINX_EXAMPLE["metrics"]


def measure(lines: list[str], rounds: int) -> float:
    _normalized, rules = engine.compile_rules(NGINX_RULES)
    extractor = engine.Extractor([engine.CompiledConfig("bench", "nginx", tuple(rules))])
    aggregator = engine.Aggregator()
    started = time.process_time()
    for _ in range(rounds):
        for text in lines:
            for match in extractor.process(text, "nginx"):
                aggregator.add(match)
    elapsed = time.process_time() - started
    aggregator.flush(time.time())
    return rounds * len(lines) / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    lines = [line(rng) for _ in range(args.lines)]
    rate = measure(lines, args.rounds)
    # One rule alone, to show where the time goes (RE2 through its Python binding).
    single = engine.compile_pattern(NGINX_RULES[0]["pattern"])
    started = time.process_time()
    for text in lines:
        single.search(text.encode())
    per_search_us = (time.process_time() - started) / len(lines) * 1e6
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'measurement':44} {'value':>12}")
    print(f"{'lines/s through the nginx rules (one core)':44} {rate:>12,.0f}")
    print(f"{'one RE2 search (µs)':44} {per_search_us:>12.2f}")
    print(f"{'peak memory of this process (MiB)':44} {rss_mb:>12.1f}")
    print("target: >= 50 000 lines/s per core for the published nginx rules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
