"""Codeer batches in the core: up to 1,000 messages answered by agents on the job queue, with
signed webhooks when a batch ends (``service`` submits and reads, ``runner`` answers, ``webhooks``
delivers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repolens.batches.webhooks import Dispatcher
    from repolens.services import Services


def dispatcher(services: Services) -> Dispatcher:
    """The webhook dispatcher of a server or worker (start it, stop it on shutdown)."""
    from repolens.batches import service
    from repolens.batches.webhooks import Dispatcher

    db = services.store
    return Dispatcher(db, services.settings, lambda public_id: service.view_by_id(db, public_id))
