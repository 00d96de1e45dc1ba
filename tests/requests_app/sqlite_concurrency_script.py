"""Run by test_sqlite_concurrency.py in a fresh process on a file SQLite database (not a test module).

Prints one JSON line: status codes of concurrent sign-ins and code checks, and of requests made
while another connection holds the write lock past the busy timeout.
"""
import json
import sqlite3
import sys
import threading
from collections import Counter

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()  # locmem e-mail
call_command("migrate", verbosity=0)
from rest_framework.authtoken.models import Token  # noqa: E402

from requests_app import services  # noqa: E402
from requests_app.models import DataSubject  # noqa: E402

subject = DataSubject.objects.create(display_name="Ana Example")
tickets, tokens = [], []
for i in range(8):
    user = User.objects.create_user(f"u{i}", email=f"u{i}@example.org")
    ticket, _ = services.ticket_create(requester=user, subject=subject)
    tickets.append(str(ticket.public_id))
    tokens.append(Token.objects.create(user=user).key)
connections.close_all()

codes: list = []
lock = threading.Lock()
barrier = threading.Barrier(16)


def worker(i: int) -> None:
    client = Client(raise_request_exception=False, REMOTE_ADDR=f"10.0.0.{i}")
    barrier.wait()
    for j in range(6):
        if i % 2:
            r = client.post("/signin/", {"email": f"user{i}-{j}@example.org"})
        else:
            k = i // 2
            r = client.post(f"/api/v1/tickets/{tickets[k]}/verify-identity/", {"code": "000000"},
                            content_type="application/json", HTTP_AUTHORIZATION=f"Token {tokens[k]}")
        with lock:
            codes.append(r.status_code)
    connections.close_all()


threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()

# Another process holds the write lock longer than the busy timeout: writers must get 503.
name = connection.settings_dict["NAME"]
holder = sqlite3.connect(name, timeout=0)
holder.execute("BEGIN IMMEDIATE")
locked = []
client = Client(raise_request_exception=False)
r = client.post(f"/api/v1/tickets/{tickets[0]}/verify-identity/", {"code": "000000"},
                content_type="application/json", HTTP_AUTHORIZATION=f"Token {tokens[0]}")
locked.append([r.status_code, r.headers.get("Retry-After"), r.content.decode()[:200]])
r = client.post("/signin/", {"email": "late@example.org"})  # the session save fails in middleware
locked.append([r.status_code, r.headers.get("Retry-After"), r.content.decode()[:200]])
holder.rollback()
holder.close()
mode = connection.cursor().execute("PRAGMA journal_mode").fetchone()[0]
print(json.dumps({"concurrent": dict(Counter(codes)), "locked": locked, "journal_mode": mode}))
sys.stdout.flush()
