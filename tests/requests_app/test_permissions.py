"""Role × endpoint matrix: allowed (2xx or 409 for an allowed role on a wrong state) / 401 / 403 / 404."""
import pytest

from requests_app import services

ROLES = ["anon", "owner", "other_owner", "reviewer", "approver", "operator", "auditor"]

# endpoint: (method, path template, {role: expected status})
MATRIX = {
    "list tickets": ("get", "/api/v1/tickets/",
                     dict(anon=401, owner=200, other_owner=200, reviewer=200, approver=200, operator=200, auditor=200)),
    "read ticket": ("get", "/api/v1/tickets/{t}/",
                    dict(anon=401, owner=200, other_owner=404, reviewer=200, approver=200, operator=200, auditor=200)),
    "start review": ("post", "/api/v1/tickets/{t}/review/",
                     dict(anon=401, owner=403, other_owner=403, reviewer=409, approver=409, operator=403, auditor=403)),
    "resolution": ("get", "/api/v1/tickets/{t}/resolution/",
                   dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=403)),
    "approve": ("post", "/api/v1/tickets/{t}/approve/",
                dict(anon=401, owner=403, other_owner=403, reviewer=403, approver=409, operator=403, auditor=403)),
    "deny": ("post", "/api/v1/tickets/{t}/deny/",
             dict(anon=401, owner=403, other_owner=403, reviewer=403, approver=400, operator=403, auditor=403)),
    "hold": ("post", "/api/v1/tickets/{t}/hold/",
             dict(anon=401, owner=403, other_owner=403, reviewer=400, approver=400, operator=403, auditor=403)),
    "extend": ("post", "/api/v1/tickets/{t}/extend/",
               dict(anon=401, owner=403, other_owner=403, reviewer=400, approver=400, operator=403, auditor=403)),
    "retry": ("post", "/api/v1/tickets/{t}/retry/",
              dict(anon=401, owner=403, other_owner=403, reviewer=400, approver=400, operator=400, auditor=403)),
    "withdraw": ("post", "/api/v1/tickets/{t}/withdraw/",
                 dict(anon=401, owner=200, other_owner=404, reviewer=403, approver=403, operator=403, auditor=403)),
    "certificate of ticket": ("get", "/api/v1/tickets/{t}/certificate/",
                              dict(anon=401, owner=404, other_owner=404, reviewer=404, approver=404, operator=404, auditor=404)),
    "list jobs": ("get", "/api/v1/jobs/",
                  dict(anon=401, owner=200, other_owner=200, reviewer=200, approver=200, operator=200, auditor=200)),
    "audit trail": ("get", "/api/v1/audit-events/",
                    dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=200)),
    "audit export": ("get", "/api/v1/audit-events/export/",
                     dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=200)),
    "audit verify": ("get", "/api/v1/audit-events/verify/",
                     dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=200)),
    "ccpa report": ("get", "/api/v1/reports/ccpa/",
                    dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=200)),
    "deadlines": ("get", "/api/v1/deadlines/",
                  dict(anon=401, owner=403, other_owner=403, reviewer=200, approver=200, operator=403, auditor=200)),
    "verify certificate": ("post", "/api/v1/certificates/verify/",
                           dict(anon=400, owner=400, other_owner=400, reviewer=400, approver=400, operator=400, auditor=400)),
}


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_role_endpoint_matrix(api, users, forget_subject, endpoint, role):
    ticket, _ = services.ticket_create(requester=users["owner"], subject=forget_subject)
    method, template, expected = MATRIX[endpoint]
    client = api(None if role == "anon" else role)
    response = getattr(client, method)(template.format(t=ticket.public_id), {}, format="json")
    assert response.status_code == expected[role], (endpoint, role, response.content[:300])
