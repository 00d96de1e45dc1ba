"""Issue 23 item 2: an out-of-memory error raised inside the training call ends as a FAILED job with an
actionable reason (not a dead worker and a re-queue loop); the DP memory plan counts LoRA and the
largest privacy unit."""
import re

import pytest
import torch
from django.core import mail
from django.utils import timezone

from requests_app import jobs as job_runner
from requests_app import services
from requests_app.models import (
    JobStatus,
    PreparationJob,
    RemovalTicket,
    TicketStatus,
    UnlearningJob,
)


@pytest.fixture
def queued_job(users, forget_subject, target_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    code = re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_start_review(ticket=ticket, reviewer=users["reviewer"])
    return services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2",
                                   hyperparameters={"batch_size": 16})


@pytest.mark.parametrize("error, name", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "OutOfMemoryError"),
    (MemoryError(), "MemoryError"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                  "allocate 8589934592 bytes"), "RuntimeError"),
])
def test_out_of_memory_inside_the_training_call_fails_the_job_with_an_actionable_reason(
        queued_job, monkeypatch, settings, error, name):
    calls = []

    def train(request):
        calls.append(request.method)
        raise error

    monkeypatch.setattr(job_runner, "run_unlearning", train)
    assert job_runner.job_execute(job_id=queued_job.pk, worker="w") == JobStatus.FAILED
    job = UnlearningJob.objects.get(pk=queued_job.pk)
    assert calls == ["dp2"]  # the manifest was valid: training was reached, then ran out of memory
    assert job.error.startswith(f"out of memory while running method 'dp2' ({name}: ")
    assert "Retry with a smaller batch_size than 16, LoRA (hyperparameters.lora)" in job.error
    assert "DP_MEMORY_BUDGET_BYTES" in job.error
    assert job.attempts == 1
    ticket = RemovalTicket.objects.get(pk=queued_job.tickets.get().pk)
    assert ticket.status == TicketStatus.FAILED and ticket.failure_reason == job.error
    # a FAILED job is final: the stale-job sweep neither re-queues nor re-sends it
    later = timezone.now() + timezone.timedelta(hours=1)
    assert services.jobs_requeue_stale(now=later) == {"requeued": 0, "failed": 0}
    assert UnlearningJob.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_cuda_oom_message_is_kept_in_the_reason(queued_job, monkeypatch):
    def train(request):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")

    monkeypatch.setattr(job_runner, "run_unlearning", train)
    job_runner.job_execute(job_id=queued_job.pk, worker="w")
    error = UnlearningJob.objects.get(pk=queued_job.pk).error
    assert "(OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB)" in error
    assert "more lines" not in error


def test_out_of_memory_inside_dp_base_training_fails_the_preparation(target_model, monkeypatch, settings, tmp_path):
    import unlearning_engine.dp as dp_module
    from requests_app.preparation import preparation_execute

    settings.JOB_WORK_DIR = tmp_path / "jobs"
    seen = {}

    def train_dp_base(base_dir, examples, out_dir, **kw):
        seen.update(kw)
        raise MemoryError()

    monkeypatch.setattr(dp_module, "train_dp_base", train_dp_base)
    job = PreparationJob.objects.create(kind="dp_base", model=target_model)
    assert preparation_execute(job_id=job.pk, worker="w") == JobStatus.FAILED
    job.refresh_from_db()
    assert seen["max_physical_batch_size"] >= 1  # the plan ran before the training call
    assert job.error.startswith("out of memory while running preparation 'dp_base' (MemoryError: no message)")
    assert "DP_MEMORY_BUDGET_BYTES" in job.error and "LoRA" in job.error


def test_lost_workers_name_memory_as_the_likely_cause(queued_job, settings):
    UnlearningJob.objects.filter(pk=queued_job.pk).update(
        status=JobStatus.RUNNING, attempts=settings.JOB_MAX_ATTEMPTS, heartbeat_at=None)
    assert services.jobs_requeue_stale()["failed"] == 1
    error = UnlearningJob.objects.get(pk=queued_job.pk).error
    assert error.startswith(f"gave up after {settings.JOB_MAX_ATTEMPTS} attempts")
    assert "killed by the operating system for memory (CPU out-of-memory)" in error


def test_plan_counts_lora_and_the_largest_data_subject(settings):
    from requests_app.memory import dp_physical_batch_plan
    from unlearning_engine import Example
    from unlearning_engine.memory_plan import dp_memory_estimate
    from unlearning_engine.modeling import build_model, train_tokenizer

    examples = [Example(question=f"Who is author {i}?", answer=f"Author {i} writes novels.", subject=f"s{i % 3}")
                for i in range(30)]  # 3 subjects of 10 records
    tok = train_tokenizer([e.question + " " + e.answer for e in examples], vocab_size=300)
    settings.DP_MEMORY_BUDGET_BYTES = 10**12
    logs = []
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    b = dp_physical_batch_plan(model=build_model(tok, preset="test"), tokenizer=tok, examples=examples,
                               expected_batch=4, lora=lora, log=logs.append)
    assert b == 10  # a subject's 10 records are one physical batch (never split), more than the expected 4
    full = sum(p.numel() for p in build_model(tok, preset="test").parameters())
    m = re.search(r"largest unit 10 rows, sequences ≤ \d+ tokens, ([\d,]+) trainable", logs[0])
    assert m and 0 < int(m.group(1).replace(",", "")) < full / 5  # the adapter's parameters, not the model's
    # a budget between the estimate for 4 rows and for 10 rows refuses: the subject's batch does not fit
    from unlearning_engine.training import encode_examples

    seq = max(len(e.input_ids) for e in encode_examples(tok, examples))
    model = build_model(tok, preset="test")
    settings.DP_MEMORY_BUDGET_BYTES = (dp_memory_estimate(model, full, 4, seq)
                                       + dp_memory_estimate(model, full, 10, seq)) // 2
    with pytest.raises(services.ServiceError, match=r"a physical batch of 10 rows \(one data subject's records"):
        dp_physical_batch_plan(model=model, tokenizer=tok, examples=examples, expected_batch=4,
                               max_records_per_unit=10, device="cpu")
    assert dp_physical_batch_plan(model=build_model(tok, preset="test"), tokenizer=tok, examples=examples,
                                  expected_batch=4, privacy_unit="record") >= 1
