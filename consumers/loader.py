"""The ingest loader: everything a batch's decision needs from the store, fetched in one
place before anything is decided (`domain.decision.Loaded`).

- content digests of the batch's event ids (the interaction index), one query;
- the streams the interactions name, and those that rejected messages mention (so that a
  dead letter about a forgotten customer can be emptied): from the library's aggregate
  cache, else every miss in one `originator_id = ANY(...)` query;
- the keys of the customers whose personal fields the batch carries: from memory, else in
  one round trip to the key store;
- the holdings of the cards the batch's enrollments and replacements name, and of those
  its card-only swipes and purchases name (whether retired: `domain.cards`), and the merges
  above the customers it merges or unmerges (`domain.merges`): never cached, another
  worker may claim or retire a card, or merge a customer, at any moment; a merged
  customer's stream is read again from the store for the same reason;
- the orders of the streams the batch returns goods on, read again from their events
  (`_orders_for`).

A key in memory may have been destroyed since (`ledger forget`, in another process). It
cannot reach the store: a sealed payload is only ever recorded on its customer's stream,
and the forgetting extended that stream, so the batch fails on the stream's version, the
caches are dropped, and the batch is decided again from the stored truth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, cast
from uuid import UUID

import cachetools

from consumers.application import CACHE_MAXSIZE, LedgerApplication
from consumers.records import InboundRecord, mentioned_streams
from domain.aggregates import Card, Customer, LedgerStream, customer_stream, returnable, stream_id
from domain.cards import Retirement, cards_ruled
from domain.decision import Loaded, Parsed, keys_wanted
from domain.interactions import Interaction
from domain.merges import MERGES, involved_customers
from domain.recording import streams_named
from store import card_holdings, interaction_index, merges
from store.keys import KeyStore


class BatchLoader:
    def __init__(self, app: LedgerApplication, keys: KeyStore | None) -> None:
        self._app = app
        self._keys = keys  # None: personal fields are recorded in the clear (a benchmark's)
        self._known_keys: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(CACHE_MAXSIZE)

    def load(self, batch: Sequence[tuple[InboundRecord, Parsed]]) -> Loaded:
        """What the decision of `batch` needs, as the store and the caches hold it now."""
        valid = [item for _, item in batch if isinstance(item, Interaction)]
        names = {name for ix in valid for name in streams_named(ix)}
        for rec, item in batch:
            if not isinstance(item, Interaction) and rec.value:
                names.update(mentioned_streams(rec.value))
        merging = [ix.payload for ix in valid if ix.type in MERGES]
        # A merged customer's stream is another partition's: read as the store has it now.
        self.evict(customer_stream(p["merged_id"]) for p in merging)
        digests, (holders, retired), parents = self._indexed(valid, merging)
        found = self.streams(names)
        self._orders_for(found, valid)
        return Loaded(
            digests=digests,
            streams=found,
            keys=None if self._keys is None else self._keys_for(keys_wanted(valid)),
            holders=holders,
            retired=retired,
            parents=parents,
        )

    def _indexed(
        self, valid: list[Interaction], merging: list[dict[str, Any]]
    ) -> tuple[dict[str, str], tuple[dict[str, str], dict[str, Retirement]], dict[str, str]]:
        """The content digests of these event ids already recorded, the holdings of the
        cards whose rules they need, and the merges above the customers they merge, as the
        store says now (never cached: another worker may claim or retire a card, or merge a
        customer, at any moment), in one transaction."""
        with self._app.datastore.transaction(commit=False) as curs:
            digests = interaction_index.digests(curs, (ix.event_id for ix in valid))
            holdings = card_holdings.holdings(curs, cards_ruled(valid))
            above = merges.parents(curs, involved_customers(merging)) if merging else {}
            return digests, holdings, above

    def _orders_for(self, found: dict[str, LedgerStream | None], valid: list[Interaction]) -> None:
        """Streams keep their orders (`domain.returns`) only while a batch returns goods on
        them. Kept for every cached stream, the lines of every purchase would grow the
        worker's memory with the ledger's history (about 1.8 kB a purchase); returns are a
        few in a hundred interactions, so the orders of the streams this batch returns on
        are read again from the store (one query), and every other stream drops its."""
        returning = {streams_named(ix)[0] for ix in valid if ix.type == "purchase_returned"}
        wanted: list[Customer | Card] = []
        for name, stream in found.items():
            if not isinstance(stream, Customer | Card):
                continue  # no stream yet, or a partner's: no orders
            if name not in returning:
                stream.orders = None
            elif stream.orders is None:
                wanted.append(stream)
        if wanted:
            stored = self._app.select_events([stream.id for stream in wanted])
            for stream in wanted:
                returnable(stream, [(e.type, e.payload) for e in stored.get(stream.id, [])])

    def streams(self, names: set[str]) -> dict[str, LedgerStream | None]:
        """The named streams as they stand: from the cache, else all misses in one query.

        The library's `repository.get()` reads one stream per query (and deep-copies from
        the cache); a batch names hundreds of streams, most of them new, so one query
        replaces hundreds of round trips.
        """
        cache = self._app.cache
        found: dict[str, LedgerStream | None] = {}
        missing: dict[UUID, str] = {}
        for name in names:
            sid = stream_id(name)
            try:
                found[name] = cast(LedgerStream, cache.get(sid))
            except KeyError:
                missing[sid] = name
                found[name] = None
        if missing:
            for sid, events in self._app.select_events(list(missing)).items():
                aggregate: Any = None
                for event in events:
                    aggregate = event.mutate(aggregate)
                cache.put(sid, aggregate)
                found[missing[sid]] = aggregate
        return found

    def _keys_for(self, wanted: set[str]) -> dict[str, bytes | None]:
        assert self._keys is not None
        known = self._known_keys
        found: dict[str, bytes | None] = {c: known[c] for c in wanted if c in known}
        if len(found) < len(wanted):
            fetched = self._keys.keys(wanted - found.keys())
            known.update((c, k) for c, k in fetched.items() if k is not None)
            found |= fetched
        return found

    def evict(self, names: Iterable[str]) -> None:
        """Forget these cached streams (a batch changed them in memory, then lost a card
        claim): the next load reads them from the store."""
        cache = self._app.cache
        for name in names:
            with contextlib.suppress(KeyError):
                cache.get(stream_id(name), evict=True)

    def reset(self) -> None:
        """Forget every cached stream and key (after a failed write or a partition
        reassignment)."""
        self._app.reset_cache()
        self._known_keys.clear()
