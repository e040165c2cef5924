"""Load on `constrained serve`: many concurrent clients with mixed MaskBench schemas, against one client at a time.

    python -m benchmarks.serve_load [--clients 32] [--requests 8] [--ray 2] [--json]

The server runs in this process (a thread) on 127.0.0.1, on a free port, over the built-in model; clients use
HTTP on loopback only. Every schema is bound once first (its first-use cost is reported apart), then:

1. one client sends ``--serial`` requests one after another (requests per second without batching);
2. ``--clients`` clients each send ``--requests`` requests at once (continuous batching shares the passes).

``--ray N`` then runs the same three phases against Ray Serve with N replicas (``constrained.ray``: the same app,
one engine and one torch thread per replica) on a local Ray instance of ``max(N, CPUs)`` CPUs started here (its
workers at niceness 0, as this process, not Ray's 15), on 127.0.0.1 too, side by side with the local server's
figures. A replica's first use of a schema reads the automaton that the local server's first use left in the disk
cache. The counters are read from ``/metrics``, summed over the replicas (each answer names its replica;
``/metrics`` is asked until every replica has answered).

Reported: requests per second of both and their ratio (target: at least 2x), p50/p99 latency, mean rows per
forward pass, tokens per forward pass, the split of step time between the model and the constraint, and the
failures: invalid outputs, lost requests, 5xx answers (all must be 0). Bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from typing import Any

import httpx
import torch
import uvicorn

from benchmarks.generation import SCHEMAS, is_valid, load_schemas
from constrained.default_model import load_default
from constrained.ray import REPLICA_HEADER
from constrained.server.app import create_app
from constrained.server.engine import Engine
from constrained.testing import free_local_port

TEXTS = ("Ada Lovelace, 36, London, ada@example.org", "Order 1123: 3 blue chairs at 45.50 EUR, shipped",
         "Grace Hopper joined the Navy in 1943 as a lieutenant", "The museum opened in 1889 with 12 staff")



def _body(schema: dict, index: int, max_tokens: int) -> dict[str, Any]:
    return {"model": "constrained-builtin", "max_tokens": max_tokens, "seed": index,
            "messages": [{"role": "user", "content": TEXTS[index % len(TEXTS)]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}


async def _one(client: httpx.AsyncClient, url: str, schema: dict, index: int, max_tokens: int,
               outcome: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(url, json=_body(schema, index, max_tokens))
    except httpx.HTTPError as error:
        outcome["lost"] += 1
        outcome["errors"].append(repr(error))
        return
    outcome["latencies"].append(time.perf_counter() - started)
    if response.status_code >= 500:
        outcome["5xx"] += 1
    elif response.status_code != 200:
        outcome["4xx"] += 1
        outcome["errors"].append(response.json()["error"]["message"][:120])
    elif not is_valid(schema, response.json()["choices"][0]["message"]["content"]):
        outcome["invalid"] += 1


async def _load(url: str, schemas: list[dict], clients: int, per_client: int, max_tokens: int,
                deadline_s: float) -> dict[str, Any]:
    outcome: dict[str, Any] = {"latencies": [], "lost": 0, "5xx": 0, "4xx": 0, "invalid": 0, "errors": []}

    async def client_loop(client: httpx.AsyncClient, number: int) -> None:
        for k in range(per_client):
            index = number * per_client + k
            await _one(client, url, schemas[index % len(schemas)], index, max_tokens, outcome)

    limits = httpx.Limits(max_connections=clients + 4)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=deadline_s, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*(client_loop(client, n) for n in range(clients))), deadline_s)
    elapsed = time.perf_counter() - started
    latencies = sorted(outcome.pop("latencies"))
    done = len(latencies)
    return {"requests": clients * per_client, "answered": done, "seconds": round(elapsed, 2),
            "requests_per_second": round(done / elapsed, 3),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p99_s": round(latencies[min(done - 1, int(0.99 * done))], 3) if latencies else None,
            **outcome, "errors": outcome["errors"][:5]}


COUNTERS = ("constrained_forward_passes_total", "constrained_row_steps_total", "constrained_generated_tokens_total",
            "constrained_model_seconds_total", "constrained_step_other_seconds_total")


def _scrape(text: str) -> dict[str, float]:
    """The :data:`COUNTERS` in one ``/metrics`` text (Prometheus' format), summed over their labels."""
    totals = dict.fromkeys(COUNTERS, 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        name = name.split("{", 1)[0]
        if name in totals:
            totals[name] += float(value.rsplit(" ", 1)[-1])
    return totals


def _counters(base_url: str, replicas: int) -> dict[str, float]:
    """The counters summed over ``replicas`` servers behind ``base_url``, told apart by the replica header."""
    seen: dict[str, dict[str, float]] = {}
    for _ in range(50 * replicas):  # the proxy picks a replica per request; this many misses is chance, bounded
        response = httpx.get(f"{base_url}/metrics", timeout=60)
        seen[response.headers.get(REPLICA_HEADER, "local")] = _scrape(response.text)
        if len(seen) == replicas:
            return {name: sum(counts[name] for counts in seen.values()) for name in COUNTERS}
    raise RuntimeError(f"/metrics reached {len(seen)} of {replicas} replicas")


def _passes(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    delta = {name: after[name] - before[name] for name in after}
    passes = delta["constrained_forward_passes_total"] or 1
    step = delta["constrained_model_seconds_total"] + delta["constrained_step_other_seconds_total"] or 1
    return {"forward_passes": int(delta["constrained_forward_passes_total"]),
            "rows_per_forward": round(delta["constrained_row_steps_total"] / passes, 2),
            "tokens_per_forward": round(delta["constrained_generated_tokens_total"] / passes, 2),
            "model_share_of_step": round(delta["constrained_model_seconds_total"] / step, 3),
            "constraint_share_of_step": round(delta["constrained_step_other_seconds_total"] / step, 3)}


def _phases(base_url: str, replicas: int, schemas: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """First use of every schema, then one client at a time, then all clients at once, against ``base_url``."""
    url = f"{base_url}/v1/chat/completions"
    report: dict[str, Any] = {}
    started = time.perf_counter()
    report["first_use"] = asyncio.run(_load(url, schemas, 1, len(schemas), args.max_tokens, args.deadline))
    report["first_use"]["seconds_per_schema"] = round((time.perf_counter() - started) / len(schemas), 2)
    before = _counters(base_url, replicas)
    report["serial"] = asyncio.run(_load(url, schemas, 1, args.serial, args.max_tokens, args.deadline))
    report["serial"].update(_passes(before, _counters(base_url, replicas)))
    before = _counters(base_url, replicas)
    report["concurrent"] = asyncio.run(_load(url, schemas, args.clients, args.requests, args.max_tokens,
                                             args.deadline))
    report["concurrent"].update(_passes(before, _counters(base_url, replicas)))
    report["speedup"] = round(report["concurrent"]["requests_per_second"]
                              / max(report["serial"]["requests_per_second"], 1e-9), 2)
    return report


def _local(schemas: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """The phases against the plain server, in a thread of this process."""
    model, tokenizer = load_default()
    engine = Engine(model, tokenizer, max_batch=args.max_batch, max_queue=4 * args.clients * args.requests,
                    request_timeout_s=args.deadline)
    port = free_local_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        return _phases(f"http://127.0.0.1:{port}", 1, schemas, args)
    finally:
        server.should_exit = True


def _on_ray(replicas: int, schemas: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """The phases against Ray Serve with ``replicas`` replicas on a local Ray instance, stopped afterwards."""
    import os
    import shutil
    import tempfile

    import ray
    from ray import serve

    from constrained.ray.serve import APP_NAME, application

    folder = tempfile.mkdtemp(prefix="ray-")
    # Ray runs its workers at niceness 15; at 0 the replicas compete for the CPUs as the local server does
    ray.init(address="local", num_cpus=max(replicas, os.cpu_count() or 1), include_dashboard=False,
             _temp_dir=folder, log_to_driver=False, _system_config={"worker_niceness": 0})
    try:
        port = free_local_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        started = time.perf_counter()
        serve.run(application(replicas=replicas, max_batch=args.max_batch, request_timeout_s=args.deadline,
                              max_queue=4 * args.clients * args.requests), name=APP_NAME)
        start_seconds = round(time.perf_counter() - started, 1)
        return {"replicas": replicas, "start_seconds": start_seconds,
                **_phases(f"http://127.0.0.1:{port}", replicas, schemas, args)}
    finally:
        ray.shutdown()  # the local instance stops with Serve in it
        shutil.rmtree(folder, ignore_errors=True)


def _print(title: str, report: dict[str, Any]) -> None:
    print(title)
    for phase in ("first_use", "serial", "concurrent"):
        r = report[phase]
        split = (f", rows/forward {r['rows_per_forward']}, tokens/forward {r['tokens_per_forward']}, model "
                 f"{r['model_share_of_step']:.0%} / constraint {r['constraint_share_of_step']:.0%} of a step"
                 if "rows_per_forward" in r else "")
        print(f"{phase:>12}: {r['answered']}/{r['requests']} in {r['seconds']} s, {r['requests_per_second']} req/s, "
              f"p50 {r['latency_p50_s']} s, p99 {r['latency_p99_s']} s{split}; invalid {r['invalid']}, "
              f"lost {r['lost']}, 5xx {r['5xx']}, 4xx {r['4xx']}")
    print(f"  concurrent / serial requests per second: {report['speedup']}x (target >= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=8, help="requests per client")
    parser.add_argument("--serial", type=int, default=16, help="requests sent one at a time, for the baseline")
    parser.add_argument("--schemas", type=int, default=6, help="MaskBench schemas mixed in the load")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds each phase may take at most")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--ray", type=int, default=0, metavar="N",
                        help="then the same load on Ray Serve with N replicas (one torch thread each; the ray extra)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    schemas = list(load_schemas(SCHEMAS[: args.schemas]).values())
    report: dict[str, Any] = {"clients": args.clients, "requests_per_client": args.requests,
                              "schemas": len(schemas), "max_tokens": args.max_tokens,
                              "local": _local(schemas, args)}
    if args.ray:
        report["ray"] = _on_ray(args.ray, schemas, args)
    if args.json:
        print(json.dumps(report))
        return
    _print(f"local server (torch threads: {torch.get_num_threads()})", report["local"])
    if args.ray:
        _print(f"Ray Serve, {args.ray} replicas (one torch thread each; started in {report['ray']['start_seconds']} s)",
               report["ray"])


if __name__ == "__main__":
    main()
