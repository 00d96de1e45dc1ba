"""Celery application: queue ``gpu`` for unlearning and evaluation (DESIGN §9)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "requests_app.settings")

app = Celery("requests_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["requests_app"])
