"""Collection routes (service/index): collections (create/list/info/re-embed/drop), items (batch upsert, delete,
keyed and paged reads, count) and queries (search, one or a batch; classify; cluster).

Thin on purpose: the schemas (service/api/schemas/collections.py) check limits that depend on settings, texts are
embedded by the app's Embedder, and everything else is a call into service.index run off the event loop (SQLite
commits, FAISS searches and Milvus calls block). The router owns the registry of the engine the settings name
(O2V_VECTOR_STORE) through its lifespan, so shutdown snapshots every FAISS index or closes the Milvus connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from service.api.collections import items, lifecycle, queries
from service.api.jobs import HeavyJobs, ReembedJobs
from service.api.services import Services
from service.index.fingerprint import model_fingerprint
from service.index.registry import open_collections


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The registry (in the app's Services), the job runners and the served model's fingerprint, for the app's
    lifetime."""
    services: Services = app.state.services
    services.fingerprint = await asyncio.to_thread(model_fingerprint, services.encoder)
    registry = services.collections = await asyncio.to_thread(open_collections, services.settings)
    heavy = services.heavy_jobs = HeavyJobs(services.settings.limits.max_heavy_jobs)
    # a re-embedded collection answers in another space: its classify streams' reference (its own leave-one-out
    # answers) is stale, so they start over, as for a new collection of that name
    reembed = services.reembed_jobs = ReembedJobs(on_switch=lambda name: services.drift.forget_collection(name))
    try:
        yield
    finally:
        reembed.close()
        heavy.close()
        await asyncio.to_thread(registry.close)


router = APIRouter(tags=["collections"], lifespan=lifespan)
for part in (lifecycle, items, queries):  # in this order: the OpenAPI schema lists the routes as they come
    router.include_router(part.router)
