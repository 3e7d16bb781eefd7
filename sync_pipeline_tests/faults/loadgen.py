"""A load generator for the webhook receiver: signed deliveries over HTTP, bounded in count and time.

Runs in a process of its own, so the receiver's figures are not the test process's
(which runs Dagster meanwhile)::

    LOADGEN_WEBHOOK_SECRET=whsec_… python -m sync_pipeline_tests.faults.loadgen \\
        --url http://127.0.0.1:8000/webhooks/clerk --deliveries deliveries.jsonl \\
        --concurrency 16 --max-seconds 20

``deliveries.jsonl`` holds one ``{"id": svix_id, "body": text}`` per line, sent in that
order by ``concurrency`` keep-alive connections, each delivery signed with svix just
before it is sent, as Svix does. Only 127.0.0.1 is accepted as a target. Prints one JSON
object: requests, seconds, rps, p50/p99/max latency (ms), statuses, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import urlparse

from svix.webhooks import Webhook


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def send(url: str, deliveries: list[tuple[str, str]], *, secret: str, concurrency: int, max_seconds: float) -> dict:
    """POST the deliveries over ``concurrency`` keep-alive connections; the figures of the run.

    HTTP/1.1 is written by hand on asyncio streams: a client library costs more CPU per
    request than the receiver does, and on a shared machine that would be measured instead.
    """
    signer = Webhook(secret)
    target = urlparse(url)
    host, port, path = target.hostname, target.port or 80, target.path or "/"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    pending = iter(deliveries)
    started = time.perf_counter()
    deadline = started + max_seconds

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, svix_id: str, body: bytes) -> int:
        now = datetime.now(timezone.utc)
        signature = signer.sign(svix_id, now, body.decode("utf-8"))
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"svix-id: {svix_id}\r\nsvix-timestamp: {int(now.timestamp())}\r\nsvix-signature: {signature}\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode("latin-1")
            + body
        )
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the receiver closed the connection")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(status_line.split()[1])

    async def worker() -> None:
        connection = None
        for svix_id, text in pending:
            if time.perf_counter() > deadline:
                break
            sent = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                status = await asyncio.wait_for(exchange(*connection, svix_id, text.encode("utf-8")), 15)
                statuses[status] += 1
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
                errors[type(error).__name__] += 1
                if connection is not None:
                    connection[1].close()
                connection = None
            latencies.append(time.perf_counter() - sent)
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": 1000 * (statistics.median(latencies) if latencies else 0.0),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies, default=0.0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--deliveries", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname != "127.0.0.1":
        parser.error("the load generator only targets 127.0.0.1")
    secret = os.environ["LOADGEN_WEBHOOK_SECRET"]
    with open(args.deliveries, encoding="utf-8") as lines:
        deliveries = [(item["id"], item["body"]) for item in map(json.loads, lines)]
    summary = asyncio.run(
        send(args.url, deliveries, secret=secret, concurrency=args.concurrency, max_seconds=args.max_seconds)
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
