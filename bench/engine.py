"""`python -m bench.engine`: lines per second through the extraction engine on one core.

Uses the published nginx example rules on generated access lines (what the reference agent runs),
then the same lines on a host that also runs twenty rules for its other logs under "*", which
access lines do not match (where the prefilter Set earns its keep), each way as the agent runs it
(an Extractor, with its prefilter) and with every rule searched in turn (match_line). It reports
the memory the process holds afterwards and needs no Django: run it anywhere the repository and
google-re2 are.
"""

import argparse
import random
import resource
import time

from edge.agent.loggen import line
from metrics import engine
from metrics.examples import NGINX_EXAMPLE

NGINX_RULES = NGINX_EXAMPLE["metrics"]
# Rules of an application log and a system log beside nginx: common shapes, none of which an
# access line matches.
OTHER_RULES = (
    [
        {"name": f"app_{level}_total", "type": "counter", "pattern": rf"\blevel={level}\b", "labels": {"app": "shop"}}
        for level in ("debug", "info", "warn", "error", "fatal")
    ]
    + [
        {"name": f"{name}_seconds", "type": "gauge", "pattern": rf"\b{name}=(\d+(?:\.\d+)?)ms", "value_capture": "$1"}
        for name in ("db_time", "cache_time", "queue_time", "render_time", "upstream_wait")
    ]
    + [
        {
            "name": f"{unit}_{event}_total",
            "type": "counter",
            "pattern": rf"{unit}\[\d+\]: {event} (\S+)",
            "labels": {"what": "$1"},
        }
        for unit in ("sshd", "cron", "systemd")
        for event in ("Started", "Stopped", "Failed")
    ]
    + [
        {"name": "oom_kills_total", "type": "counter", "pattern": r"Out of memory: Killed process (\d+)"},
        {"name": "segfaults_total", "type": "counter", "pattern": r"segfault at [0-9a-f]+"},
    ]
)
TARGET = 100_000


def configs(wide: bool) -> list[engine.CompiledConfig]:
    found = [engine.CompiledConfig("nginx", "nginx", tuple(engine.compile_rules(NGINX_RULES)[1]))]
    if wide:
        found.append(engine.CompiledConfig("other", "*", tuple(engine.compile_rules(OTHER_RULES)[1])))
    return found


def measure(lines: list[str], rounds: int, *, wide: bool, prefilter: bool) -> tuple[float, bool]:
    """(lines per second, whether the Extractor ended with its Set in use) over `rounds` passes."""
    extractor = engine.Extractor(configs(wide))
    rules = extractor.rules_for("nginx")
    aggregator = engine.Aggregator()
    started = time.process_time()
    for _ in range(rounds):
        for text in lines:
            found = extractor.process(text, "nginx") if prefilter else engine.match_line(rules, text)
            for match in found:
                aggregator.add(match)
    elapsed = time.process_time() - started
    aggregator.flush(time.time())
    return rounds * len(lines) / elapsed, extractor.prefiltered("nginx")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    lines = [line(rng) for _ in range(args.lines)]
    rows = []
    for wide in (False, True):
        rules = len(NGINX_RULES) + wide * len(OTHER_RULES)
        rate, prefiltered = measure(lines, args.rounds, wide=wide, prefilter=True)
        how = "Set in use" if prefiltered else "Set unused: every rule matches"
        rows.append((f"{rules} rules, as the agent runs them ({how})", rate))
        rate, _ = measure(lines, args.rounds, wide=wide, prefilter=False)
        rows.append((f"{rules} rules, every rule searched (match_line)", rate))
    # One rule alone, to show where the time goes (RE2 through its Python binding's search()).
    single = engine.compile_pattern(NGINX_RULES[0]["pattern"])
    started = time.process_time()
    for text in lines:
        single.search(text.encode())
    per_search_us = (time.process_time() - started) / len(lines) * 1e6
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(len(label) for label, _rate in rows) + 2
    print(f"{'lines/s on one core, nginx access lines':{width}} {'value':>12}")
    for label, rate in rows:
        print(f"{label:{width}} {rate:>12,.0f}")
    print(f"{'one RE2 search through search() (µs)':{width}} {per_search_us:>12.2f}")
    print(f"{'peak memory of this process (MiB)':{width}} {rss_mb:>12.1f}")
    print(f"target: >= {TARGET:,} lines/s per core for the published nginx rules, as the agent runs them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
