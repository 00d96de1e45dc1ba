"""Django project and app of the erasure-request compliance service (DESIGN §2)."""
from .celery import app as celery_app

__all__ = ["celery_app"]
