"""Issue 13 items 1 and 2: the right person approves, and only the subject's own records."""
import re

import pytest
from django.core import mail

from requests_app import selectors, services
from requests_app.models import (
    AuditEvent,
    RemovalTicket,
    TicketStatus,
    TrainingRecord,
    UnlearningJob,
)
from requests_app.workflow import TransitionError


def _file(users, subject, capture):
    with capture(execute=True):
        ticket, _ = services.ticket_create(requester=users["owner"], subject=subject)
    return ticket, re.search(r" is (\d{6})", mail.outbox[-1].body).group(1)


def _in_review(users, subject, capture, reviewer="reviewer"):
    ticket, code = _file(users, subject, capture)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    return services.ticket_start_review(ticket=ticket, reviewer=users[reviewer])


def _other_subject(corpus, subject):
    return corpus.records.filter(split=TrainingRecord.SPLIT_TRAIN).exclude(subject=subject).first().subject


# --- item 1: hold → release → approve ---------------------------------------------------------

def test_attack_hold_release_approve_while_submitted_is_refused(api, users, forget_subject, target_model,
                                                                 django_capture_on_commit_callbacks):
    ticket, _ = _file(users, forget_subject, django_capture_on_commit_callbacks)
    tid = ticket.public_id
    approver = api("approver")
    assert approver.post(f"/api/v1/tickets/{tid}/hold/", {"reason": "x"}, format="json").status_code == 200
    r = approver.post(f"/api/v1/tickets/{tid}/release/")
    assert r.status_code == 200 and r.json()["status"] == "submitted"  # not in_review
    r = approver.post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json")
    assert r.status_code == 409 and r.json()["current_status"] == "submitted"
    assert UnlearningJob.objects.count() == 0
    assert RemovalTicket.objects.get(pk=ticket.pk).identity_verified_at is None


def test_release_returns_to_identity_verified(users, forget_subject, django_capture_on_commit_callbacks):
    ticket, code = _file(users, forget_subject, django_capture_on_commit_callbacks)
    services.ticket_verify_identity(ticket=ticket, code=code, actor=users["owner"])
    services.ticket_hold(ticket=ticket, actor=users["approver"], reason="litigation")
    ticket = services.ticket_release_hold(ticket=ticket, actor=users["approver"])
    assert ticket.status == TicketStatus.IDENTITY_VERIFIED and ticket.reviewed_by_id is None
    event = AuditEvent.objects.filter(verb="ticket.hold_released").last()
    assert event.before["status"] == "on_hold" and event.after["status"] == "identity_verified"


def test_legacy_hold_without_prior_state_never_skips_verification(users, forget_subject,
                                                                  django_capture_on_commit_callbacks):
    ticket, _ = _file(users, forget_subject, django_capture_on_commit_callbacks)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.ON_HOLD, status_before_hold="")
    ticket = services.ticket_release_hold(ticket=ticket, actor=users["approver"])
    assert ticket.status == TicketStatus.SUBMITTED


def test_unverified_ticket_in_review_cannot_be_approved(users, forget_subject, target_model,
                                                        django_capture_on_commit_callbacks):
    ticket, _ = _file(users, forget_subject, django_capture_on_commit_callbacks)
    RemovalTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.IN_REVIEW, reviewed_by=users["reviewer"])
    with pytest.raises(services.ServiceError, match="identity is not verified"):
        services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2")
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.IN_REVIEW


def test_four_eyes_holds_after_hold_and_release(api, users, forget_subject, target_model, settings,
                                               django_capture_on_commit_callbacks):
    settings.FOUR_EYES_APPROVAL = True
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks, reviewer="approver")
    tid = ticket.public_id
    approver = api("approver")
    assert approver.post(f"/api/v1/tickets/{tid}/hold/", {"reason": "x"}, format="json").status_code == 200
    r = approver.post(f"/api/v1/tickets/{tid}/release/")
    assert r.json()["status"] == "in_review"
    r = approver.post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json")
    assert r.status_code == 403 and "four-eyes" in r.json()["detail"]
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.IN_REVIEW


def test_four_eyes_needs_a_recorded_reviewer(users, forget_subject, target_model, settings,
                                            django_capture_on_commit_callbacks):
    settings.FOUR_EYES_APPROVAL = True
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    RemovalTicket.objects.filter(pk=ticket.pk).update(reviewed_by=None)
    with pytest.raises(services.PermissionDeniedError, match="no reviewer"):
        services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2")


def test_without_four_eyes_a_single_person_may_review_and_approve(users, forget_subject, target_model, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.FOUR_EYES_APPROVAL = False
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks, reviewer="approver")
    job = services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2")
    assert job.forget_count == 20


# --- item 2: the forget set belongs to the subject --------------------------------------------

def test_approve_with_another_subjects_records_is_400(api, users, corpus, forget_subject, target_model,
                                                      django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    other = _other_subject(corpus, forget_subject)
    theirs = list(corpus.records.filter(subject=other).values_list("pk", flat=True))
    mine = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    r = api("approver").post(f"/api/v1/tickets/{ticket.public_id}/approve/",
                             {"method": "dp2", "record_ids": mine + theirs[:3]}, format="json")
    assert r.status_code == 400 and "not in this ticket's resolution" in r.json()["detail"]
    assert str(theirs[0]) in r.json()["detail"]
    assert RemovalTicket.objects.get(pk=ticket.pk).status == TicketStatus.IN_REVIEW
    assert UnlearningJob.objects.count() == 0


def _content_match_record(corpus, subject):
    return TrainingRecord.objects.create(
        corpus=corpus, index=99_999, split=TrainingRecord.SPLIT_TRAIN, subject=None,
        question=f"Which prize did {subject.display_name} win?", answer="A fictional one.", sha256="c" * 64)


def test_content_matches_need_reviewer_confirmation_and_are_audited(api, users, corpus, forget_subject, target_model,
                                                                    django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    extra = _content_match_record(corpus, forget_subject)
    tid = ticket.public_id
    rows = api("reviewer").get(f"/api/v1/tickets/{tid}/resolution/").json()
    assert {r["id"]: r["provenance"] for r in rows}[extra.pk] == "content match"
    all_ids = [r["id"] for r in rows]
    r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2", "record_ids": all_ids},
                             format="json")
    assert r.status_code == 400 and "confirmed by a reviewer" in r.json()["detail"]
    # the reviewer confirms; an id outside the resolution is refused first
    other = _other_subject(corpus, forget_subject)
    stranger = corpus.records.filter(subject=other).first().pk
    bad = api("reviewer").post(f"/api/v1/tickets/{tid}/resolution/", {"record_ids": [stranger]}, format="json")
    assert bad.status_code == 400 and str(stranger) in bad.json()["detail"]
    ok = api("reviewer").post(f"/api/v1/tickets/{tid}/resolution/", {"record_ids": all_ids}, format="json")
    assert ok.status_code == 200 and all(row["confirmed"] for row in ok.json())
    confirmed = AuditEvent.objects.filter(verb="ticket.resolution_confirmed").last()
    assert confirmed.actor.endswith(":reviewer") and confirmed.after["count"] == 21
    assert confirmed.after["content_matches"] == [extra.pk]
    with django_capture_on_commit_callbacks(execute=False):
        r = api("approver").post(f"/api/v1/tickets/{tid}/approve/", {"method": "dp2"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["forget_count"] == 21
    approved = AuditEvent.objects.filter(verb="ticket.approved", object_id=str(tid)).get()
    records = TrainingRecord.objects.filter(pk__in=all_ids)
    assert approved.after["forget_set"] == [{"id": x.pk, "sha256": x.sha256} for x in records.order_by("pk")]
    assert approved.after["forget_count"] == 21 and approved.after["reviewed_by"] == users["reviewer"].pk


def test_confirmer_cannot_approve_under_four_eyes(users, corpus, forget_subject, target_model, settings,
                                                 django_capture_on_commit_callbacks):
    settings.FOUR_EYES_APPROVAL = True
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    services.ticket_confirm_resolution(ticket=ticket, reviewer=users["approver"], record_ids=ids)
    with pytest.raises(services.PermissionDeniedError, match="confirmed the resolution"):
        services.ticket_approve(ticket=RemovalTicket.objects.get(pk=ticket.pk), approver=users["approver"])


def test_confirmation_refused_after_approval(users, forget_subject, target_model, django_capture_on_commit_callbacks):
    ticket = _in_review(users, forget_subject, django_capture_on_commit_callbacks)
    ids = [r.pk for r in selectors.ticket_resolution(ticket=ticket)]
    services.ticket_approve(ticket=ticket, approver=users["approver"], method="dp2")
    with pytest.raises(TransitionError):
        services.ticket_confirm_resolution(ticket=ticket, reviewer=users["reviewer"], record_ids=ids)
