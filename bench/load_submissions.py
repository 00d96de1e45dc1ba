"""Load test: erasure-request submissions over HTTP against a real gunicorn server on 127.0.0.1.

``CLIENTS`` concurrent clients (threads), each with its own API token and data subject, file
``REQUESTS`` tickets in total with ``POST /api/v1/tickets/`` (a unique ``Idempotency-Key`` each),
closed loop: a client sends its next request when the previous one has answered. Then a sample is
replayed with the same keys (must return the original tickets, 200). Reports status counts, latency
percentiles and throughput, checks that exactly ``REQUESTS`` tickets exist for the run with no
duplicate and that the audit hash chain is intact.

    createdb -h 127.0.0.1 -U postgres unlearning_bench   # once; the script migrates it
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/unlearning_bench \\
        python bench/load_submissions.py --requests 1000 --clients 20 --workers 3

Throttling is disabled for the server (``THROTTLE_USER``/``THROTTLE_ANON``) and e-mail goes to the
dummy backend. The tests reuse :func:`gunicorn_server`, :func:`submit_all` and :func:`summarize`
(``tests/integration/test_load_submissions.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    client: int
    key: str
    status: int
    seconds: float
    ticket_id: str | None
    error: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(*, database_url: str, workers: int = 3, log_path: Path | None = None,
                    extra_env: dict | None = None, start_timeout: float = 60.0, cwd: Path = ROOT):
    """``gunicorn requests_app.wsgi`` with ``workers`` sync workers on a free loopback port; yields
    the base URL once ``/healthz`` answers, stops the server (SIGTERM) on exit. ``cwd``: the checkout
    whose code the server runs (default: this one)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "THROTTLE_USER": "1000000/minute",
        "THROTTLE_ANON": "1000000/minute",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "DJANGO_SETTINGS_MODULE": "requests_app.settings",
        **(extra_env or {}),
    }
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "requests_app.wsgi:application", "--workers", str(workers),
         "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "10"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode} (log: {log_path})")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/v1/schema/")  # any answer: the workers import Django
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer in time") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if log_path:
            log.close()


def prepare_clients(n: int, prefix: str) -> list[dict]:
    """``n`` data owners, each with an API token and a data subject of their own (Django ORM;
    idempotent for a given ``prefix``)."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from requests_app.models import DataSubject

    clients = []
    for i in range(n):
        user, _ = User.objects.get_or_create(username=f"{prefix}-{i}", defaults={"email": f"{prefix}-{i}@example.org"})
        token, _ = Token.objects.get_or_create(user=user)
        subject, _ = DataSubject.objects.get_or_create(display_name=f"{prefix} subject {i}")
        clients.append({"token": token.key, "subject_id": str(subject.public_id)})
    return clients


def _post(host: str, port: int, token: str, key: str, body: bytes, timeout: float) -> tuple[int, dict | None]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/api/v1/tickets/", body=body, headers={
            "Authorization": f"Token {token}", "Content-Type": "application/json",
            "Accept": "application/json", "Idempotency-Key": key,
        })
        response = conn.getresponse()
        raw = response.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return response.status, data
    finally:
        conn.close()


def submit_all(base_url: str, clients: list[dict], total: int, run_id: str, *, timeout: float = 30.0,
               only: list[int] | None = None) -> tuple[list[Result], float]:
    """Send ``total`` submissions from ``len(clients)`` concurrent clients; returns (results, wall s).

    Request ``j`` (0-based) is sent by client ``j % len(clients)`` with Idempotency-Key
    ``{run_id}-{j}``. ``only`` sends just those request numbers: with the same ``run_id`` that is a
    replay by the same clients (keys are scoped to the requester), which must create nothing.
    """
    host, port = base_url.removeprefix("http://").split(":")
    port = int(port)
    keys = {j: f"{run_id}-{j}" for j in range(total)}
    plan: list[list[int]] = [[] for _ in clients]
    for j in (range(total) if only is None else only):
        plan[j % len(clients)].append(j)
    start = threading.Barrier(len(clients) + 1)

    def client(i: int) -> list[Result]:
        c = clients[i]
        out = []
        start.wait()
        for j in plan[i]:
            body = json.dumps({"subject_id": c["subject_id"], "jurisdiction": "GDPR" if j % 2 else "CCPA",
                               "description": f"bench {run_id} #{j}"}).encode()
            t0 = time.perf_counter()
            try:
                status, data = _post(host, port, c["token"], keys[j], body, timeout)
                error = "" if status < 400 else json.dumps(data)[:300]
            except OSError as exc:
                status, data, error = 0, None, f"{type(exc).__name__}: {exc}"
            out.append(Result(client=i, key=keys[j], status=status, seconds=time.perf_counter() - t0,
                              ticket_id=(data or {}).get("id") if isinstance(data, dict) else None, error=error))
        return out

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        futures = [pool.submit(client, i) for i in range(len(clients))]
        start.wait()
        t0 = time.perf_counter()
        results = [r for f in futures for r in f.result()]
        wall = time.perf_counter() - t0
    return results, wall


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def summarize(results: list[Result], wall: float) -> dict:
    latencies = [r.seconds * 1000 for r in results]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    ids = [r.ticket_id for r in results if r.ticket_id]
    return {
        "requests": len(results),
        "wall_seconds": round(wall, 3),
        "throughput_rps": round(len(results) / wall, 1) if wall else None,
        "status_counts": statuses,
        "server_errors": sum(1 for r in results if r.status >= 500 or r.status == 0),
        "distinct_ticket_ids": len(set(ids)),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1), "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1), "max": round(max(latencies), 1),
            "mean": round(sum(latencies) / len(latencies), 1),
        },
        "errors_sample": [r.error for r in results if r.error][:5],
    }


def format_table(summary: dict, title: str = "submissions") -> str:
    lat = summary["latency_ms"]
    rows = [
        ("phase", title), ("requests", summary["requests"]), ("status counts", summary["status_counts"]),
        ("5xx / transport errors", summary["server_errors"]), ("distinct ticket ids", summary["distinct_ticket_ids"]),
        ("wall (s)", summary["wall_seconds"]), ("throughput (req/s)", summary["throughput_rps"]),
        ("latency p50 (ms)", lat["p50"]), ("latency p90 (ms)", lat["p90"]), ("latency p99 (ms)", lat["p99"]),
        ("latency max (ms)", lat["max"]), ("latency mean (ms)", lat["mean"]),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def machine_info() -> dict:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
        db_version = cur.fetchone()[0]
    try:
        import gunicorn

        gunicorn_version = gunicorn.__version__
    except ImportError:
        gunicorn_version = None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "gunicorn": gunicorn_version, "database": db_version.split(" on ")[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--replay", type=int, default=100, help="submissions replayed with the same keys")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "load_submissions.json")
    args = parser.parse_args(argv)

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL database (e.g. postgres://postgres@127.0.0.1:5432/unlearning_bench)")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "requests_app.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from requests_app.audit import audit_chain_verify
    from requests_app.models import RemovalTicket

    call_command("migrate", verbosity=0, interactive=False)
    run_id = uuid.uuid4().hex[:8]
    clients = prepare_clients(args.clients, f"bench-{run_id}")
    log_path = args.out.parent / f"gunicorn-{run_id}.log"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gunicorn_server(database_url=database_url, workers=args.workers, log_path=log_path) as url:
        results, wall = submit_all(url, clients, args.requests, run_id)
        step = max(1, args.requests // args.replay) if args.replay else 0
        sample = list(range(0, args.requests, step))[: args.replay] if step else []
        replay, replay_wall = (submit_all(url, clients, args.requests, run_id, only=sample)
                               if sample else ([], 0.0))
    summary = summarize(results, wall)
    created = RemovalTicket.objects.filter(description__startswith=f"bench {run_id} #")
    original = {r.key: r.ticket_id for r in results}
    checks = {
        "tickets_in_db": created.count(),
        "distinct_keys_in_db": created.values("idempotency_key").distinct().count(),
        "all_201": summary["status_counts"] == {"201": args.requests},
        "replay_all_200_same_ids": all(r.status == 200 and r.ticket_id == original[r.key] for r in replay),
        "audit_chain_valid": audit_chain_verify().valid,
    }
    checks["ok"] = (checks["tickets_in_db"] == checks["distinct_keys_in_db"] == args.requests
                    and checks["all_201"] and checks["replay_all_200_same_ids"] and checks["audit_chain_valid"]
                    and summary["server_errors"] == 0)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {"requests": args.requests, "clients": args.clients, "gunicorn_workers": args.workers,
                   "worker_class": "sync", "replay": len(sample)},
        "machine": machine_info(), "submissions": summary,
        "replay": summarize(replay, replay_wall) if replay else None, "checks": checks,
    }
    print(format_table(summary, f"{args.requests} submissions, {args.clients} clients, {args.workers} workers"))
    if replay:
        print()
        print(format_table(report["replay"], f"replay of {len(replay)} (same Idempotency-Key)"))
    print()
    print("checks:", json.dumps(checks))
    args.out.write_text(json.dumps(report, indent=1))
    print(f"written {args.out}")
    return 0 if checks["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
