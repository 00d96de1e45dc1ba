"""DRF permissions by role group (DESIGN §1): data owner, legal reviewer/approver, ML operator, auditor."""
from rest_framework.permissions import BasePermission

from ..selectors import user_roles

REVIEWER = "legal_reviewer"
APPROVER = "legal_approver"
OPERATOR = "ml_operator"
AUDITOR = "auditor"
ALL_ROLES = (REVIEWER, APPROVER, OPERATOR, AUDITOR)


def _has(user, *roles) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user_roles(user) & set(roles)))


class IsReviewer(BasePermission):
    message = "only the legal team (reviewer or approver) may do this"

    def has_permission(self, request, view):
        return _has(request.user, REVIEWER, APPROVER)


class IsApprover(BasePermission):
    message = "only a legal approver may approve or deny"

    def has_permission(self, request, view):
        return _has(request.user, APPROVER)


class IsOperatorOrLegal(BasePermission):
    message = "only the legal team or ML operators may do this"

    def has_permission(self, request, view):
        return _has(request.user, REVIEWER, APPROVER, OPERATOR)


class IsAuditorOrLegal(BasePermission):
    message = "only auditors and the legal team may read the audit trail and reports"

    def has_permission(self, request, view):
        return _has(request.user, AUDITOR, REVIEWER, APPROVER)


class ReadOnlyForAuditor(BasePermission):
    """Auditors read everything and change nothing."""

    message = "auditors have read-only access"

    def has_permission(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        roles = user_roles(request.user)
        return not (roles and roles <= {AUDITOR})
