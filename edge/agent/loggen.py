"""`python -m edge.agent.loggen --file access.log --rate 20`: realistic nginx access lines.

Each line carries `request_time=` so the published nginx rules find all three metrics.
"""

import argparse
import random
import time
from datetime import UTC, datetime

PATHS = ["/", "/index.html", "/api/orders", "/api/login", "/static/app.js", "/api/cart", "/health"]
METHODS = ["GET"] * 8 + ["POST"] * 3 + ["PUT", "DELETE", "PATCH"]
STATUSES = [200] * 20 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503]
AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.32", "okhttp/4.12"]


def line(rng: random.Random, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    duration = min(30.0, rng.lognormvariate(-2.5, 1.2))
    return (
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "
        f'[{now.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{rng.choice(METHODS)} {rng.choice(PATHS)} HTTP/1.1" '
        f'{rng.choice(STATUSES)} {rng.randint(80, 50_000)} "-" "{rng.choice(AGENTS)}" request_time={duration:.3f}'
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.agent.loggen", description=__doc__)
    parser.add_argument("--file", required=True, help="the log file to append to")
    parser.add_argument("--rate", type=float, default=10, help="lines per second (default 10)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many lines (default: run forever)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)  # test data, not secrets
    written, started = 0, time.monotonic()
    with open(args.file, "a", buffering=1) as handle:
        while not args.count or written < args.count:
            handle.write(line(rng) + "\n")
            written += 1
            delay = started + written / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
