"""PostgreSQL refuses UPDATE and DELETE on the audit trail (DESIGN §3: append-only at the DB level).

TRUNCATE is left to privileges (production: the application role has no TRUNCATE grant) so that
test databases can still be flushed between tests.
"""
from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION requests_app_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS requests_app_auditevent_append_only ON requests_app_auditevent;
CREATE TRIGGER requests_app_auditevent_append_only
    BEFORE UPDATE OR DELETE ON requests_app_auditevent
    FOR EACH ROW EXECUTE FUNCTION requests_app_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS requests_app_auditevent_append_only ON requests_app_auditevent;
DROP FUNCTION IF EXISTS requests_app_audit_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("requests_app", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
