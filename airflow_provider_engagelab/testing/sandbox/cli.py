"""``python -m airflow_provider_engagelab.testing.sandbox``: serve the sandbox from a shell."""

from __future__ import annotations

import argparse
import signal
import ssl
import threading

from airflow_provider_engagelab.testing.sandbox.service import Sandbox


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (the sandbox's settings)."""
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_engagelab.testing.sandbox",
        description="Serve a local EngageLab-compatible journey statistics API. Prints the "
        "base URL alone on the first line, then serves until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--api-secret", default="sandbox-secret")
    p.add_argument(
        "--available-through",
        default=None,
        help="ISO instant before which data exists (default: today 00:00 UTC, moving)",
    )
    p.add_argument("--rate-limit", type=float, default=None, help="requests/second")
    p.add_argument("--rate-burst", type=float, default=None)
    p.add_argument("--no-retry-after", action="store_true", help="omit Retry-After on 429")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    p.add_argument("--failure-rate", type=float, default=0.0, help="probability of HTTP 500")
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--hang-rate", type=float, default=0.0)
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--missing-journeys", default="", help="comma-separated IDs that do not exist")
    p.add_argument(
        "--missing-journey-mode", choices=("per_journey", "whole_call"), default="per_journey"
    )
    p.add_argument("--certfile", default=None,
                   help="serve HTTPS with this PEM certificate chain (the key too, or --keyfile)")
    p.add_argument("--keyfile", default=None, help="the PEM private key of --certfile")
    return p


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context with the given PEM certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox from the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keyfile and not args.certfile:
        parser.error("--keyfile needs --certfile")
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sandbox = Sandbox(
        api_key=args.api_key,
        api_secret=args.api_secret,
        port=args.port,
        host=args.host,
        ssl_context=server_context(args.certfile, args.keyfile) if args.certfile else None,
        available_through=args.available_through,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        send_retry_after=not args.no_retry_after,
        latency=args.latency,
        failure_rate=args.failure_rate,
        drop_rate=args.drop_rate,
        hang_rate=args.hang_rate,
        hang_seconds=args.hang_seconds,
        seed=args.seed,
        missing_journeys=args.missing_journeys,
        missing_journey_mode=args.missing_journey_mode,
    )
    sandbox.start()
    try:
        print(sandbox.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0
