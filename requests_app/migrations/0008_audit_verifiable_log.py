"""The audit trail as a verifiable log (issue 17): Merkle leaves and signed tree heads, both append-only.

On PostgreSQL the function of migration 0002 (``requests_app_audit_append_only``) also refuses UPDATE
and DELETE on ``requests_app_auditleaf`` and ``requests_app_signedtreehead``. New audit events no
longer chain (``prev_hash`` empty); their order comes from the table's sequence.
"""
import django.db.models.deletion
from django.db import migrations, models

TABLES = ("requests_app_auditleaf", "requests_app_signedtreehead")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}; "
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION requests_app_audit_append_only();", params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};", params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('requests_app', '0006_onboarding'),
    ]

    operations = [
        migrations.CreateModel(
            name='SignedTreeHead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('tree_size', models.BigIntegerField(unique=True)),
                ('root_hash', models.CharField(max_length=64)),
                ('issued_at', models.DateTimeField()),
                ('signed_payload', models.TextField()),
                ('signature', models.TextField()),
                ('key_id', models.CharField(max_length=64)),
                ('algorithm', models.CharField(default='Ed25519', max_length=16)),
                ('frontier', models.JSONField(default=list)),
            ],
            options={
                'ordering': ['tree_size'],
            },
        ),
        migrations.AddField(
            model_name='certificate',
            name='transparency',
            field=models.JSONField(blank=True, help_text='audit-inclusion/1 block: the signed tree head and the inclusion proof of the issuance event', null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.CreateModel(
            name='AuditLeaf',
            fields=[
                ('leaf_index', models.BigIntegerField(primary_key=True, serialize=False)),
                ('leaf_hash', models.CharField(max_length=64)),
                ('event', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='leaf', to='requests_app.auditevent')),
            ],
            options={
                'ordering': ['leaf_index'],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
