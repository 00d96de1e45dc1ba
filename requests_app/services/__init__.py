"""Mutations of the workflow (HackSoft style: ``<entity>_<verb>``), one module per entity (DESIGN §11).

Every state change is one call that (a) compare-and-sets the row's status, (b) writes its audit event
in the same transaction and (c) enqueues side effects with ``transaction.on_commit`` (DESIGN §2).
This package re-exports every service so that callers use ``services.<entity>_<verb>``.
"""
from .approval import *  # noqa: F403
from .calibration import *  # noqa: F403
from .common import *  # noqa: F403
from .common import _job_enqueue_on_commit, _sha256_text, _ticket_transition, _tickets_advance  # noqa: F401
from .corpora import *  # noqa: F403
from .evidence import *  # noqa: F403
from .jobs import *  # noqa: F403
from .manifests import *  # noqa: F403
from .notices import owner_notice_mark_failed, owner_notice_queue, owner_notice_send  # noqa: F401
from .preparation import *  # noqa: F403
from .queue import *  # noqa: F403
from .retry import *  # noqa: F403
from .target_models import *  # noqa: F403
from .tickets import *  # noqa: F403
from .tickets import _identity_code_issue  # noqa: F401
from .unmatched import *  # noqa: F403
from .webhooks import *  # noqa: F403
