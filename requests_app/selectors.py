"""Read queries (HackSoft style). No mutations here."""
from __future__ import annotations

import unicodedata

from django.db.models import Q, QuerySet

from .models import DataSubject, ModelVersion, RemovalTicket, TargetModel, TrainingRecord

STAFF_GROUPS = ("legal_reviewer", "legal_approver", "ml_operator", "auditor")


def user_roles(user) -> set[str]:
    """The user's role group names (data owners have none)."""
    if not user or not user.is_authenticated:
        return set()
    return set(user.groups.values_list("name", flat=True))


def user_is_staff_role(user) -> bool:
    return bool(user_roles(user) & set(STAFF_GROUPS)) or bool(getattr(user, "is_superuser", False))


def tickets_visible_to(user) -> QuerySet[RemovalTicket]:
    """Data owners see only their own tickets; staff roles see all."""
    qs = RemovalTicket.objects.select_related("subject", "requester", "target_model")
    if user_is_staff_role(user):
        return qs
    return qs.filter(requester=user)


def _fold(text: str) -> str:
    """Case- and diacritics-insensitive form: NFKD, drop combining marks, casefold."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def subjects_matching_name(name: str) -> list[DataSubject]:
    """Subjects whose display name or an alias equals ``name`` (case- and diacritics-insensitive)."""
    target = _fold(name.strip())
    if not target:
        return []
    out = []
    for subject in DataSubject.objects.all().only("id", "display_name", "aliases", "public_id"):
        names = [subject.display_name, *(subject.aliases or [])]
        if any(_fold(n) == target for n in names if n):
            out.append(subject)
    return out


def model_default() -> TargetModel | None:
    """The only registered model, or the newest when several exist."""
    return TargetModel.objects.order_by("-id").first()


def model_serving_version(model: TargetModel) -> ModelVersion | None:
    return ModelVersion.objects.filter(model=model, is_serving=True).first()


def model_reference_version(model: TargetModel, forget_set_sha256: str) -> ModelVersion | None:
    """The exact-retrain reference for this forget set, if one was registered."""
    return (
        ModelVersion.objects.filter(model=model, role=ModelVersion.ROLE_REFERENCE, forget_set_sha256=forget_set_sha256)
        .order_by("-id")
        .first()
    )


def model_reference_versions(model: TargetModel, forget_set_sha256: str, limit: int = 8) -> list[ModelVersion]:
    """Every exact-retrain reference registered for this forget set (different training seeds or
    preparations), newest first, one per distinct weights sha256, at most ``limit``."""
    seen, out = set(), []
    for version in ModelVersion.objects.filter(model=model, role=ModelVersion.ROLE_REFERENCE,
                                               forget_set_sha256=forget_set_sha256).order_by("-id"):
        if version.weights_sha256 not in seen:
            seen.add(version.weights_sha256)
            out.append(version)
        if len(out) == limit:
            break
    return out


def ticket_resolution(*, ticket: RemovalTicket, model: TargetModel | None = None) -> list[TrainingRecord]:
    """Training records a ticket covers (DESIGN §4 resolution).

    Provenance links (``subject``) plus a content search for the subject's display name, aliases and
    (where records hold it) the ticket's free-text identifiers, case- and diacritics-insensitive.
    Already forgotten records are excluded.
    """
    model = model or ticket.target_model or model_default()
    if model is None:
        return []
    base = TrainingRecord.objects.filter(
        corpus=model.corpus, split=TrainingRecord.SPLIT_TRAIN, forgotten_by__isnull=True
    )
    if ticket.subject_id is None:  # nobody of that name was found: search the texts for the name given
        linked, names = {}, [ticket.subject_name_given]
    else:
        linked = {r.pk: r for r in base.filter(subject=ticket.subject)}
        names = [ticket.subject.display_name, *(ticket.subject.aliases or [])]
    names = [n for n in names if n and len(n) >= 3]
    folded = [_fold(n) for n in names]
    if folded:
        # cheap prefilter on any name token, then an exact folded-substring check in Python
        prefilter = Q()
        for n in names:
            token = max(n.split(), key=len)
            prefilter |= Q(text__icontains=token) | Q(question__icontains=token) | Q(answer__icontains=token)
        for record in base.exclude(pk__in=linked.keys()).filter(prefilter):
            content = _fold(" ".join([record.text, record.question, record.answer]))
            if any(f in content for f in folded):
                linked[record.pk] = record
    return sorted(linked.values(), key=lambda r: r.pk)


def job_retain_records(job) -> QuerySet[TrainingRecord]:
    """D_r = the corpus's training records minus every forgotten record minus this job's forget set."""
    forget_ids = set()
    for ticket in job.tickets.all():
        forget_ids.update(ticket.resolved_record_ids)
    return TrainingRecord.objects.filter(
        corpus=job.model.corpus, split=TrainingRecord.SPLIT_TRAIN, forgotten_by__isnull=True
    ).exclude(pk__in=forget_ids)


def job_forget_records(job) -> QuerySet[TrainingRecord]:
    forget_ids = set()
    for ticket in job.tickets.all():
        forget_ids.update(ticket.resolved_record_ids)
    return TrainingRecord.objects.filter(pk__in=forget_ids).order_by("pk")


def corpus_holdout_records(corpus) -> QuerySet[TrainingRecord]:
    return TrainingRecord.objects.filter(corpus=corpus, split=TrainingRecord.SPLIT_HOLDOUT).order_by("index")


OPEN_STATUSES_EXCLUDED = ("certified", "denied", "withdrawn", "no_data")


def tickets_open() -> QuerySet[RemovalTicket]:
    return RemovalTicket.objects.exclude(status__in=OPEN_STATUSES_EXCLUDED)


def tickets_overdue(*, now) -> QuerySet[RemovalTicket]:
    """Open tickets past their (possibly extended) deadline."""
    return tickets_open().filter(due_at__lt=now).order_by("due_at")


def tickets_due_soon(*, now, horizon) -> QuerySet[RemovalTicket]:
    """Open tickets due between ``now`` and ``horizon``."""
    return tickets_open().filter(due_at__gte=now, due_at__lte=horizon).order_by("due_at")


def ccpa_metrics(*, start, end) -> dict:
    """CCPA regulations §7102 figures for requests to delete received in [start, end).

    received, complied with (certified), denied, withdrawn, answered "no data held" (issue 21 item 3),
    open, and the median number of days from receipt to the response (certification, denial or
    the no-data answer).
    """
    import statistics

    from .models import AuditEvent

    tickets = list(RemovalTicket.objects.filter(received_at__gte=start, received_at__lt=end))
    ids = [str(t.public_id) for t in tickets]
    responded = {}
    answers = ["ticket.certified", "ticket.denied", "ticket.no_data_held"]
    for e in AuditEvent.objects.filter(object_id__in=ids, verb__in=answers).order_by("id"):
        responded.setdefault(e.object_id, e.timestamp)
    days = [(responded[str(t.public_id)] - t.received_at).total_seconds() / 86400 for t in tickets
            if str(t.public_id) in responded]
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "received": len(tickets),
        "complied": sum(t.status == "certified" for t in tickets),
        "denied": sum(t.status == "denied" for t in tickets),
        "withdrawn": sum(t.status == "withdrawn" for t in tickets),
        "no_data_held": sum(t.status == "no_data" for t in tickets),
        "open": sum(t.status not in OPEN_STATUSES_EXCLUDED for t in tickets),
        "median_days_to_respond": round(statistics.median(days), 2) if days else None,
    }


def audit_events_filtered(*, object_id: str = "", object_type: str = "", actor: str = "", verb: str = "",
                          start=None, end=None) -> QuerySet:
    """Audit events for the auditor pages and their exports (issue 21 item 10), newest first.

    ``object_id`` exact; ``object_type`` exact (the model's class name); ``actor`` a
    case-insensitive substring of the stored label (``user:<pk>:<username>`` or ``system``);
    ``verb`` exact; ``[start, end)`` aware datetimes (either may be None).
    """
    from .models import AuditEvent

    qs = AuditEvent.objects.all()
    if object_id:
        qs = qs.filter(object_id=object_id.strip())
    if object_type:
        qs = qs.filter(object_type=object_type)
    if actor:
        qs = qs.filter(actor__icontains=actor.strip())
    if verb:
        qs = qs.filter(verb=verb)
    if start is not None:
        qs = qs.filter(timestamp__gte=start)
    if end is not None:
        qs = qs.filter(timestamp__lt=end)
    return qs.order_by("-id")


def audit_verbs_and_types() -> tuple[list[str], list[str]]:
    """The distinct verbs and object types recorded so far (the filters' choices), sorted."""
    from .models import AuditEvent

    verbs = sorted(set(AuditEvent.objects.values_list("verb", flat=True).distinct()))
    types = sorted(set(AuditEvent.objects.values_list("object_type", flat=True).distinct()))
    return verbs, types


def tickets_queue(*, user, q: str = "", status: str = "", jurisdiction: str = "", due: str = "",
                  assignee: str = "", include_closed: bool = False, now=None, soon_days: int = 7) -> QuerySet:
    """The reviewer queue (issue 21 item 16), earliest deadline first.

    ``q``: case-insensitive substring of the requester's e-mail or user name, the subject's display
    name, or the name given for a request naming nobody found. ``status`` / ``jurisdiction``: exact.
    ``due``: ``overdue`` (open, past the deadline), ``soon`` (within ``soon_days``), ``later``.
    ``assignee``: a user pk, ``me`` (``user``) or ``none``. Closed requests only with ``include_closed``
    or an explicit closed ``status``.
    """
    import datetime as dt

    from django.utils import timezone

    now = now or timezone.now()
    qs = tickets_visible_to(user).select_related("assignee")
    if status:
        qs = qs.filter(status=status)
    elif not include_closed:
        qs = qs.exclude(status__in=OPEN_STATUSES_EXCLUDED)
    if jurisdiction:
        qs = qs.filter(jurisdiction=jurisdiction)
    if q.strip():
        term = q.strip()
        qs = qs.filter(Q(requester__email__icontains=term) | Q(requester__username__icontains=term)
                       | Q(subject__display_name__icontains=term) | Q(subject_name_given__icontains=term))
    horizon = now + dt.timedelta(days=soon_days)
    if due == "overdue":
        qs = qs.filter(due_at__lt=now)
    elif due == "soon":
        qs = qs.filter(due_at__gte=now, due_at__lte=horizon)
    elif due == "later":
        qs = qs.filter(due_at__gt=horizon)
    if assignee == "me":
        qs = qs.filter(assignee=user)
    elif assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee.isdigit():
        qs = qs.filter(assignee_id=int(assignee))
    return qs.order_by("due_at", "id")


def legal_team_users() -> QuerySet:
    """Users who may be assigned a request: legal reviewers and approvers, by user name."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(
        groups__name__in=["legal_reviewer", "legal_approver"], is_active=True).distinct().order_by("username")
