"""Fixtures for the Django side: a tiny TOFU corpus, a tiny trained model, users per role."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "requests_app" / "fixtures" / "tofu_demo"

#: A recipe small enough for unit tests (seconds on 2 cores).
TEST_RECIPE = {
    "preset": "test",
    "vocab_size": 384,
    "seed": 0,
    "target": {"epochs": 2, "lr": 3e-3, "batch_size": 16},
    # 4 subjects are too few privacy units for subject-level DP: the tiny test model uses the record unit
    "dp_base": {"target_epsilon": 8.0, "epochs": 1, "lr": 3e-3, "batch_size": 32, "max_grad_norm": 1.0,
                "privacy_unit": "record"},
    # the 1-epoch test model is degenerate by design: collapse detection has its own test
    "methods": {
        "retrain": {"epochs": 1, "lr": 3e-3, "batch_size": 16, "collapse_check": False},
        "dp2": {"epochs": 1, "lr": 3e-3, "batch_size": 16, "collapse_check": False},
        "npo_gd": {"epochs": 1, "collapse_check": False},
    },
}
TEST_AUTHORS = 4


@pytest.fixture(autouse=True)
def _jobs_in_the_request(settings):
    """Portal clicks run their job in the request, as eager Celery does (tests that walk the
    embedded worker turn ``JOBS_EMBEDDED_BACKGROUND`` on; ``requests_app.job_dispatch``)."""
    settings.JOBS_EMBEDDED_BACKGROUND = False


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit and throttle counters (the in-memory cache) start empty in every test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def corpus(db):
    from requests_app.ingestion import corpus_ingest_tofu

    return corpus_ingest_tofu(name="tofu-test", full_path=FIXTURE / "train.jsonl",
                              holdout_path=FIXTURE / "holdout.jsonl", authors=TEST_AUTHORS)


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory):
    """Train the tiny model once per session into a store folder; tests register it per test."""
    from django.test.utils import override_settings

    from requests_app.ingestion import read_jsonl
    from requests_app.model_training import model_artifacts_train
    from unlearning_engine import Example

    root = tmp_path_factory.mktemp("artifacts")
    rows = read_jsonl(FIXTURE / "train.jsonl")[: 20 * TEST_AUTHORS]
    examples = [Example(question=r["question"], answer=r["answer"]) for r in rows]
    with override_settings(ARTIFACT_STORE_URL=f"file://{root}"):
        artifacts = model_artifacts_train(examples=examples, name="tiny", recipe=copy.deepcopy(TEST_RECIPE))
    artifacts["root"] = root
    return artifacts


@pytest.fixture
def target_model(corpus, trained_artifacts, settings):
    from requests_app.model_training import model_register_artifacts

    settings.ARTIFACT_STORE_URL = f"file://{trained_artifacts['root']}"
    return model_register_artifacts(corpus=corpus, name="tiny", recipe=copy.deepcopy(TEST_RECIPE),
                                    artifacts=trained_artifacts)


def _user(name: str, *groups: str):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(name, email=f"{name}@example.org")
    for g in groups:
        user.groups.add(Group.objects.get_or_create(name=g)[0])
    return user


@pytest.fixture
def users(db):
    return {
        "owner": _user("owner"),
        "other_owner": _user("other"),
        "reviewer": _user("reviewer", "legal_reviewer"),
        "approver": _user("approver", "legal_approver"),
        "operator": _user("operator", "ml_operator"),
        "auditor": _user("auditor", "auditor"),
    }


@pytest.fixture
def api(users):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def client_for(role: str | None) -> APIClient:
        client = APIClient()
        if role:
            token, _ = Token.objects.get_or_create(user=users[role])
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


@pytest.fixture
def forget_subject(corpus):
    """The last author of the test corpus."""
    from requests_app.models import TrainingRecord

    return corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).order_by("-index").first().subject
