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
