"""Helpers for the portal tests (Django test client)."""
from __future__ import annotations

import re

import pytest
from django.core import mail


def code_from_outbox() -> str:
    return re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)


def link_from_outbox() -> str:
    return re.search(r"https?://\S+/signin/link/\S+/", mail.outbox[-1].body).group(0)


@pytest.fixture
def client_for(users):
    from django.test import Client

    def make(role: str | None, **kwargs) -> Client:
        client = Client(**kwargs)
        if role:
            client.force_login(users[role])
        return client

    return make


@pytest.fixture
def file_request(client_for, django_capture_on_commit_callbacks):
    """File a request through the portal form as ``role``; returns the ticket."""
    from requests_app.models import RemovalTicket

    def file(subject, role: str = "owner", **extra):
        data = {"subject_name": subject.display_name, "scope": "all", "jurisdiction": "GDPR", "legal_ground": "",
                **extra}
        with django_capture_on_commit_callbacks(execute=True):
            r = client_for(role).post("/requests/new/", data)
        assert r.status_code == 302, r.content.decode()[:3000]
        return RemovalTicket.objects.order_by("-id").first()

    return file
