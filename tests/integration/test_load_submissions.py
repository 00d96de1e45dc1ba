"""Load: 1000 ticket submissions over HTTP from 20 concurrent clients against a real gunicorn server
(3 sync workers) on PostgreSQL — exactly 1000 tickets, no duplicate, no 5xx, an intact audit chain.

The same helpers make ``bench/load_submissions.py`` (figures in BENCHMARKS.md).
"""
from __future__ import annotations

import uuid

import pytest
from django.db import connection

from bench.load_submissions import (
    format_table,
    gunicorn_server,
    prepare_clients,
    submit_all,
    summarize,
)
from requests_app.audit import audit_chain_verify
from requests_app.models import AuditEvent, RemovalTicket

from .conftest import require_real_stack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOTAL, CLIENTS, WORKERS = 1000, 20, 3


def test_1000_concurrent_submissions_over_http(tmp_path):
    require_real_stack()
    db = connection.settings_dict
    database_url = (f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                    f"{db['NAME']}")
    clients = prepare_clients(CLIENTS, "load")
    with gunicorn_server(database_url=database_url, workers=WORKERS, log_path=tmp_path / "gunicorn.log") as url:
        results, wall = submit_all(url, clients, TOTAL, "load")
        # a client retrying 100 requests with the same Idempotency-Key gets the original tickets back
        replay, replay_wall = submit_all(url, clients, TOTAL, "load", only=list(range(0, TOTAL, 10)))
    summary = summarize(results, wall)
    print()
    print(format_table(summary, f"{TOTAL} submissions, {CLIENTS} clients, {WORKERS} gunicorn sync workers"))
    print(format_table(summarize(replay, replay_wall), "replay"))

    assert summary["server_errors"] == 0, summary["errors_sample"] + [(tmp_path / "gunicorn.log").read_text()[-3000:]]
    assert summary["status_counts"] == {"201": TOTAL}, summary["errors_sample"]
    assert summary["distinct_ticket_ids"] == TOTAL
    assert RemovalTicket.objects.count() == TOTAL
    assert RemovalTicket.objects.values("idempotency_key").distinct().count() == TOTAL
    assert set(RemovalTicket.objects.values_list("public_id", flat=True).iterator()) == {
        uuid.UUID(r.ticket_id) for r in results}
    by_client = {}
    for r in results:
        by_client[r.client] = by_client.get(r.client, 0) + 1
    assert sorted(by_client.values()) == [TOTAL // CLIENTS] * CLIENTS
    for i, c in enumerate(clients):  # each ticket belongs to the client (token) that filed it
        assert RemovalTicket.objects.filter(subject__public_id=c["subject_id"], requester__username=f"load-{i}").count() \
            == TOTAL // CLIENTS

    original = {r.key: r.ticket_id for r in results}
    assert len(replay) == 100
    assert [(r.status, r.ticket_id) for r in replay] == [(200, original[r.key]) for r in replay]
    assert RemovalTicket.objects.count() == TOTAL

    assert AuditEvent.objects.filter(verb="ticket.submitted").count() == TOTAL
    chain = audit_chain_verify()
    assert chain.valid, chain.reason
    assert wall < 75, f"{TOTAL} submissions took {wall:.1f} s"
