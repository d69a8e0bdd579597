"""`logfleet-agent` (installed) or `python -m edge.agent`: options from the command line or the environment."""

import argparse
import logging
import os
import signal
from pathlib import Path

from edge.agent.agent import Agent, Options


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SystemExit(f"{option} takes name=value, not {value!r}")
        pairs[key] = rest
    return pairs


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def parse(argv=None, prog: str | None = None) -> tuple[Options, str]:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The LogFleet edge agent. Precedence: an option given here (or in its environment variable) "
        "wins over the same setting in the server's agent config, and the agent logs which value it uses; a "
        "setting given only by the server applies as the server says.",
    )
    parser.add_argument("--server", default=env.get("LOGFLEET_SERVER"), help="LogFleet URL (LOGFLEET_SERVER)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key; visible to every user of the host in `ps`, so prefer LOGFLEET_API_KEY or --api-key-file",
    )
    parser.add_argument(
        "--api-key-file",
        default=env.get("LOGFLEET_API_KEY_FILE"),
        help="a file holding the API key (LOGFLEET_API_KEY_FILE)",
    )
    parser.add_argument("--name", default=env.get("LOGFLEET_AGENT_NAME"), help="agent name (LOGFLEET_AGENT_NAME)")
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        help="name=/path/to/file, repeatable (LOGFLEET_SOURCES: comma-separated); wins over a source of the "
        "same name in the server's agent config",
    )
    parser.add_argument("--label", action="append", default=[], help="key=value for a new agent, repeatable")
    parser.add_argument(
        "--allow-path",
        action="append",
        default=[],
        help="a directory log sources from the server's config may be in, repeatable "
        "(LOGFLEET_ALLOWED_PATHS: comma-separated; default /var/log)",
    )
    parser.add_argument(
        "--state-dir",
        default=env.get("LOGFLEET_STATE_DIR"),
        help="offsets and the metric queue (LOGFLEET_STATE_DIR; default ~/.logfleet-agent/<name>)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=_number(env.get("LOGFLEET_HEARTBEAT_INTERVAL")),
        help="seconds (LOGFLEET_HEARTBEAT_INTERVAL); given here it wins over the server's agent config, "
        "otherwise the server's applies (default 30)",
    )
    parser.add_argument(
        "--metrics-interval",
        type=float,
        default=_number(env.get("LOGFLEET_METRICS_INTERVAL")),
        help="seconds (LOGFLEET_METRICS_INTERVAL); given here it wins over the server's agent config, "
        "otherwise the server's applies (default 60)",
    )
    parser.add_argument("--queue-max-mb", type=float, default=float(env.get("LOGFLEET_QUEUE_MAX_MB", 50)))
    parser.add_argument("--log-level", default=env.get("LOGFLEET_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    if args.api_key is not None:
        logging.getLogger("logfleet.agent").warning(
            "--api-key on the command line is visible to every user of this host (ps); "
            "use LOGFLEET_API_KEY or --api-key-file instead"
        )
    elif args.api_key_file:
        try:
            args.api_key = Path(args.api_key_file).read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read --api-key-file: {exc}")
    else:
        args.api_key = env.get("LOGFLEET_API_KEY")
    for required in ("server", "api_key", "name"):
        if not getattr(args, required):
            parser.error(f"--{required.replace('_', '-')} is required")
    sources = args.source or [s for s in env.get("LOGFLEET_SOURCES", "").split(",") if s]
    state_dir = Path(args.state_dir or Path.home() / ".logfleet-agent" / args.name)
    allowed = args.allow_path or [p for p in env.get("LOGFLEET_ALLOWED_PATHS", "/var/log").split(",") if p]
    options = Options(
        server=args.server,
        api_key=args.api_key,
        name=args.name,
        sources=_pairs(sources, "--source"),
        labels=_pairs(args.label, "--label"),
        state_dir=state_dir,
        heartbeat_interval=args.heartbeat_interval,
        metrics_interval=args.metrics_interval,
        queue_max_bytes=int(args.queue_max_mb * 1024 * 1024),
        allowed_paths=tuple(allowed),
    )
    return options, args.log_level


def main(argv=None, prog: str | None = None) -> int:
    """The console script `logfleet-agent`; without `prog`, argparse names the program after the script."""
    options, level = parse(argv, prog)
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(options)

    def stop(signum, _frame):
        logging.getLogger("logfleet.agent").info("signal %s: stopping", signal.Signals(signum).name)
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
    return agent.exit_code
