"""The cloud side: a FastAPI service around one method, with dynamic batching and a history store.

Never imports :mod:`paramcast.device`; the two meet only in :mod:`paramcast.types` and
:mod:`paramcast.wire`.
"""

from paramcast.cloud.app import Batching, Limits, create_app, load_method
from paramcast.cloud.auth import TokenStore, issue_token
from paramcast.cloud.batching import DynamicBatcher, InlineBatcher
from paramcast.cloud.store import HistoryRow, HistoryStore, StoreUnavailable, load_history, open_store

__all__ = ["Batching", "DynamicBatcher", "HistoryRow", "HistoryStore", "InlineBatcher", "Limits", "StoreUnavailable", "TokenStore",
           "create_app", "issue_token", "load_history", "load_method", "open_store"]
