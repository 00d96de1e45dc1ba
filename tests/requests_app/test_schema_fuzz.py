"""A bounded schemathesis run against the OpenAPI schema: no operation may answer 5xx."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from requests_app.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


@pytest.fixture
def token(users, forget_subject):
    from rest_framework.authtoken.models import Token

    from requests_app import services

    services.ticket_create(requester=users["owner"], subject=forget_subject)
    return Token.objects.get_or_create(user=users["approver"])[0].key


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, token):
    response = case.call(headers={"Authorization": f"Token {token}"})
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
