"""Intake throughput (issue 17 part 2): ticket submissions against gunicorn + PostgreSQL + Redis,
with a bare Django "hello" endpoint on the same stack as the floor, measured in the same run.

``profile``: one submission in-process (Django test client, the real middleware and API): the SQL
queries it runs and a cProfile of ``--n`` submissions (cumulative time, top functions).

``load``: starts ``gunicorn requests_app.wsgi`` (``--workers`` sync workers) with
``BENCH_HELLO_ENDPOINT=1`` (adds ``GET /bench/hello/``: a plain Django view behind the full middleware
stack, no DRF, no database) and ``CACHE_URL=redis://`` (throttle counters in Redis), then runs
``wrk`` (a second process, C, ``apt-get install wrk``) for ``--seconds`` against the hello endpoint,
then against ``POST /api/v1/tickets/`` (a unique Idempotency-Key per request, ``--users`` owners,
each with a token and a data subject). Reports requests/s and the latency percentiles of wrk, the
status counts, and checks the tickets in the database. E-mails and webhooks are only enqueued (no
worker runs during the measurement); the queued messages of the run are removed afterwards.

    createdb -h 127.0.0.1 -U postgres wt_auditlog   # once; the script migrates it
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt_auditlog REDIS_URL=redis://127.0.0.1:6379/14 \\
        python bench/intake_load.py load --workers 4 --connections 16 --seconds 20
    python bench/intake_load.py profile --n 200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRK_SCRIPT = r"""
local tokens = {%(tokens)s}
local subjects = {%(subjects)s}
local run = "%(run)s"
local threads = {}
local counter = 0
n201, n200, nother = 0, 0, 0
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local i = ((counter + tid) %% #tokens) + 1
  local body = '{"subject_id":"' .. subjects[i] .. '","jurisdiction":"GDPR","description":"bench"}'
  return wrk.format("POST", "/api/v1/tickets/", {
    ["Authorization"] = "Token " .. tokens[i], ["Content-Type"] = "application/json",
    ["Accept"] = "application/json", ["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter}, body)
end

function response(status, headers, body)
  if status == 201 then n201 = n201 + 1 elseif status == 200 then n200 = n200 + 1 else nother = nother + 1 end
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("n201"); b = b + t:get("n200"); c = c + t:get("nother")
  end
  io.write(string.format("STATUS 201=%%d 200=%%d other=%%d\n", a, b, c))
end
"""


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "requests_app.settings")
    import django

    django.setup()



def profile(n: int) -> None:
    """Print the queries of one submission and the cProfile top of ``n`` submissions."""
    import cProfile
    import pstats

    _django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from bench.load_submissions import prepare_clients

    owner = prepare_clients(1, "profile")[0]
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Token {owner['token']}"}
    body = json.dumps({"subject_id": owner["subject_id"], "jurisdiction": "GDPR", "description": "profile"})

    def post(key: str):
        r = client.post("/api/v1/tickets/", body, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY=key, **headers)
        assert r.status_code == 201, r.content[:300]

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
        post(f"warm-{uuid.uuid4()}")
        with CaptureQueriesContext(connection) as q:
            post(f"one-{uuid.uuid4()}")
        print(f"{len(q.captured_queries)} SQL statements for one submission:")
        for i, query in enumerate(q.captured_queries, 1):
            print(f"  {i:2d}. {query['time']}s  {query['sql'][:150]}")
        # wall time of the request vs time inside the database driver, over n submissions
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as q:
            for _ in range(n):
                post(f"t-{uuid.uuid4()}")
        wall = (time.perf_counter() - t0) / n * 1000
        db_ms = sum(float(x["time"]) for x in q.captured_queries) / n * 1000
        print(f"\nper submission (no profiler, {n} runs): {wall:.1f} ms wall, {db_ms:.1f} ms in "
              f"{len(q.captured_queries) / n:.0f} SQL statements, {wall - db_ms:.1f} ms in Python "
              "(Django, DRF, ORM, Celery publish)")
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(n):
            post(f"p-{uuid.uuid4()}")
        prof.disable()
        print(f"\n{n} submissions in-process: {n / (time.perf_counter() - t0):.0f}/s (profiler on)")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def _wrk(url: str, seconds: int, connections: int, threads: int, script: str | None) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {}
    for q, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[q] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    status = re.search(r"STATUS 201=(\d+) 200=(\d+) other=(\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": total, "rps": rps, "p50_ms": lat.get("50"), "p90_ms": lat.get("90"),
            "p99_ms": lat.get("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "status": dict(zip(("201", "200", "other"), map(int, status.groups()), strict=True)) if status else None,
            "raw": out}


def _submit_script(tmp: Path, owners: list[dict], run: str) -> str:
    script = tmp / f"{run}.lua"
    script.write_text(WRK_SCRIPT % {"tokens": ",".join(f'"{o["token"]}"' for o in owners),
                                    "subjects": ",".join(f'"{o["subject_id"]}"' for o in owners), "run": run})
    return str(script)


def _measure_server(args, tmp: Path, owners, database_url: str, env: dict, cwd: Path, *, hello: bool) -> dict:
    """One gunicorn server: (hello floor,) then submissions; each after a 3 s warm-up."""
    from bench.load_submissions import gunicorn_server
    from requests_app.models import RemovalTicket

    out: dict = {}
    tag = uuid.uuid4().hex[:8]
    log = tmp / f"gunicorn-{tag}.log"
    with gunicorn_server(database_url=database_url, workers=args.workers, log_path=log, extra_env=env, cwd=cwd) as url:
        if hello:
            _wrk(f"{url}/bench/hello/", 3, args.connections, args.threads, None)
            out["hello"] = _wrk(f"{url}/bench/hello/", args.seconds, args.connections, args.threads, None)
        _wrk(f"{url}/api/v1/tickets/", 3, args.connections, args.threads, _submit_script(tmp, owners, f"w{tag}"))
        before = RemovalTicket.objects.count()
        out["submit"] = _wrk(f"{url}/api/v1/tickets/", args.seconds, args.connections, args.threads,
                             _submit_script(tmp, owners, f"m{tag}"))
        out["tickets_created"] = RemovalTicket.objects.count() - before
    out["server_log_tail"] = log.read_text()[-2000:]
    return out


def load(args) -> dict:
    """Hello floor and ticket submissions in one run (see the module docstring); with ``--baseline
    DIR`` also the submissions of another checkout's code (e.g. main) on the same database, after."""
    _django()
    from django.conf import settings
    from django.core.management import call_command

    from bench.load_submissions import prepare_clients

    call_command("migrate", verbosity=0)
    owners = prepare_clients(args.users, "intake")
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    env = {"BENCH_HELLO_ENDPOINT": "1", "CACHE_URL": redis_url, "CELERY_BROKER_URL": redis_url,
           "CELERY_TASK_ALWAYS_EAGER": "false", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **dict(args.env or [])}
    result = {"workers": args.workers, "connections": args.connections, "threads": args.threads,
              "seconds": args.seconds, "machine": f"{platform.node()} {os.cpu_count()} cores",
              "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        result["branch"] = _measure_server(args, Path(tmp), owners, database_url, env, ROOT, hello=True)
        if args.baseline:
            base_env = {**env, "PYTHONPATH": str(args.baseline)}
            result["baseline"] = _measure_server(args, Path(tmp), owners, database_url, base_env, args.baseline,
                                                 hello=False)
    result["load_average_after"] = os.getloadavg()
    _drop_queued_messages(redis_url)
    return result


def _drop_queued_messages(redis_url: str) -> None:
    """Remove the e-mail and webhook messages this run queued (only the run's own Redis db)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    for queue in ("email", "webhooks", "default"):
        r.delete(queue)


def table(result: dict) -> str:
    """Markdown rows: the floor, the branch's submissions, the baseline's submissions (if run)."""
    b = result["branch"]
    rows = [("bare Django hello (floor)", b["hello"]), ("POST /api/v1/tickets/ (this branch)", b["submit"])]
    if "baseline" in result:
        rows.append(("POST /api/v1/tickets/ (baseline checkout)", result["baseline"]["submit"]))
    out = ["| endpoint | requests | req/s | p50 ms | p90 ms | p99 ms | statuses |", "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        st = r["status"] or {"non-2xx": r["non_2xx"]}
        out.append(f"| {name} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                   f"{r['p99_ms']:.1f} | {' '.join(f'{k}:{v}' for k, v in st.items())} |")
    out.append(f"\nsubmissions / floor: {b['submit']['rps'] / b['hello']['rps']:.3f}"
               + (f"; branch / baseline: {b['submit']['rps'] / result['baseline']['submit']['rps']:.2f}"
                  if "baseline" in result else "")
               + f"; load average before/after: {result['load_average_before']} / {result['load_average_after']}")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile")
    p.add_argument("--n", type=int, default=200)
    g = sub.add_parser("load")
    g.add_argument("--workers", type=int, default=4)
    g.add_argument("--connections", type=int, default=16)
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--seconds", type=int, default=20)
    g.add_argument("--users", type=int, default=20)
    g.add_argument("--env", type=lambda kv: tuple(kv.split("=", 1)), action="append",
                   help="extra server environment KEY=VALUE (e.g. to compare settings)")
    g.add_argument("--baseline", type=Path, help="another checkout (e.g. /work/main) to measure after, same database")
    g.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.command == "profile":
        profile(args.n)
        return 0
    result = load(args)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    for name in ("branch", "baseline"):
        part = result.get(name)
        if part and part["submit"]["status"] and part["submit"]["status"]["other"]:
            print(f"{name} server log tail:\n" + part["server_log_tail"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
