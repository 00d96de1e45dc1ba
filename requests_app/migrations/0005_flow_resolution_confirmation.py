# Reviewer-confirmed resolution of a ticket (issue 13 item 2).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('requests_app', '0004_certificate_document_type'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='removalticket',
            name='confirmed_record_ids',
            field=models.JSONField(blank=True, default=list,
                                   help_text='reviewer-confirmed resolution (provenance links + content matches)'),
        ),
        migrations.AddField(
            model_name='removalticket',
            name='resolution_confirmed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='removalticket',
            name='resolution_confirmed_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
