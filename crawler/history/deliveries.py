"""Deliveries: one row per (run, recipient) with state pending -> sending -> sent | failed,
and an append-only ``delivery_log``.

``claim_delivery`` is the only way into ``sending`` and is atomic (the row's primary key
plus a conditional UPDATE: on SQLite under the one writer lock, on PostgreSQL the UPDATE of
a row another transaction just claimed waits for it and then finds it ``sending``), so two
``send`` processes (or workers) never send the same message. A row left ``sending`` (a crash
mid-send, or an SMTP reply that never came) is never claimed again automatically: whether
the server got the message is unknown and a duplicate is worse than a delay. It is listed by
``unconfirmed_deliveries`` for the admin, who may ``release_delivery`` it (-> failed, retried
by the next send) or ``mark_sent`` it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select, update

from crawler.history.connection import _Base, insert
from crawler.history.rows import (
    _MAX_ERROR,
    Delivery,
    DeliveryEvent,
    _delivery_from_row,
    _dt,
    _now,
    _ts,
)
from crawler.history.schema import deliveries as dtab
from crawler.history.schema import delivery_log


class DeliveriesMixin(_Base):
    def _log(self, db: Connection, run_id: int, recipient: str, state: str, detail: str) -> None:
        db.execute(
            delivery_log.insert().values(
                run_id=run_id,
                recipient=recipient,
                at=_ts(_now()),
                state=state,
                detail=detail[:_MAX_ERROR],
            )
        )

    def _pending_row(self, db: Connection, run_id: int, recipient: str, now: str) -> bool:
        """Insert a ``pending`` row unless (run, recipient) has one; True if inserted."""
        result = db.execute(
            insert(self.dialect, dtab)
            .values(
                run_id=run_id, recipient=recipient, state="pending", created_at=now, updated_at=now
            )
            .on_conflict_do_nothing()
            .execution_options(preserve_rowcount=True)  # INSERT's rowcount is not kept else
        )
        return bool(result.rowcount)

    def register_deliveries(self, run_id: int, recipients: Iterable[str]) -> None:
        """Create ``pending`` rows for recipients that have none yet (idempotent)."""
        now = _ts(_now())
        with self._tx() as db:
            for rcpt in recipients:
                if self._pending_row(db, run_id, rcpt, now):
                    self._log(db, run_id, rcpt, "pending", "")

    def claim_delivery(self, run_id: int, recipient: str, message_id: str = "") -> bool:
        """Atomically move (run, recipient) from pending/failed (or no row) to ``sending``.

        True: the caller owns the send and must end it with ``mark_sent`` or ``mark_failed``.
        False: sent already, or ``sending`` (another process, or an unknown outcome).
        """
        now = _ts(_now())
        with self._tx() as db:
            self._pending_row(db, run_id, recipient, now)
            result = db.execute(
                update(dtab)
                .where(
                    dtab.c.run_id == run_id,
                    dtab.c.recipient == recipient,
                    dtab.c.state.in_(("pending", "failed")),
                )
                .values(
                    state="sending",
                    attempts=dtab.c.attempts + 1,
                    message_id=message_id,
                    updated_at=now,
                )
            )
            if result.rowcount:
                self._log(db, run_id, recipient, "sending", message_id)
            return result.rowcount == 1

    def mark_sent(self, run_id: int, recipient: str, detail: str = "") -> None:
        """The message was accepted (server reply 250, or the .eml file is in place)."""
        now = _ts(_now())
        with self._tx() as db:
            db.execute(
                update(dtab)
                .where(dtab.c.run_id == run_id, dtab.c.recipient == recipient)
                .values(state="sent", sent_at=now, updated_at=now, last_error="")
            )
            self._log(db, run_id, recipient, "sent", detail)

    def mark_failed(self, run_id: int, recipient: str, error: str) -> None:
        """The message was certainly not delivered; the next send retries it."""
        with self._tx() as db:
            db.execute(
                update(dtab)
                .where(
                    dtab.c.run_id == run_id, dtab.c.recipient == recipient, dtab.c.state != "sent"
                )
                .values(state="failed", last_error=error[:_MAX_ERROR], updated_at=_ts(_now()))
            )
            self._log(db, run_id, recipient, "failed", error)

    def note_delivery(self, run_id: int, recipient: str, detail: str) -> None:
        """Record a remark (e.g. "outcome unknown") without changing the state."""
        key = (dtab.c.run_id == run_id, dtab.c.recipient == recipient)
        with self._tx() as db:
            db.execute(
                update(dtab)
                .where(*key)
                .values(last_error=detail[:_MAX_ERROR], updated_at=_ts(_now()))
            )
            row = db.execute(select(dtab.c.state).where(*key)).first()
            self._log(db, run_id, recipient, row[0] if row else "?", detail)

    def release_delivery(self, run_id: int, recipient: str) -> bool:
        """Admin decision: a ``sending`` row (outcome unknown) may be sent again.

        It becomes ``failed`` and the next send retries it; this can duplicate the email
        (same Message-ID, which lets many mail systems drop the copy).
        """
        with self._tx() as db:
            result = db.execute(
                update(dtab)
                .where(
                    dtab.c.run_id == run_id,
                    dtab.c.recipient == recipient,
                    dtab.c.state == "sending",
                )
                .values(state="failed", updated_at=_ts(_now()))
            )
            if result.rowcount:
                self._log(db, run_id, recipient, "failed", "released by admin for resend")
            return result.rowcount == 1

    def delivery(self, run_id: int, recipient: str) -> Delivery | None:
        row = self._one(select(dtab).where(dtab.c.run_id == run_id, dtab.c.recipient == recipient))
        return None if row is None else _delivery_from_row(row)

    def deliveries(
        self, run_id: int | None = None, states: Iterable[str] | None = None
    ) -> list[Delivery]:
        stmt = select(dtab).order_by(dtab.c.run_id, dtab.c.recipient)
        if run_id is not None:
            stmt = stmt.where(dtab.c.run_id == run_id)
        if states is not None:
            stmt = stmt.where(dtab.c.state.in_(tuple(states)))
        return [_delivery_from_row(r) for r in self._rows(stmt)]

    def pending_deliveries(self, run_id: int | None = None) -> list[Delivery]:
        """Deliveries the next send will try: ``pending`` and ``failed``."""
        return self.deliveries(run_id, ("pending", "failed"))

    def unconfirmed_deliveries(self, run_id: int | None = None) -> list[Delivery]:
        """Rows left ``sending``: in progress elsewhere, or outcome unknown (admin)."""
        return self.deliveries(run_id, ("sending",))

    def delivery_log(
        self, run_id: int | None = None, recipient: str | None = None, limit: int = 200
    ) -> list[DeliveryEvent]:
        stmt = select(delivery_log).order_by(delivery_log.c.id.desc()).limit(limit)
        if run_id is not None:
            stmt = stmt.where(delivery_log.c.run_id == run_id)
        if recipient is not None:
            stmt = stmt.where(delivery_log.c.recipient == recipient)
        return [
            DeliveryEvent(r["run_id"], r["recipient"], _dt(r["at"]), r["state"], r["detail"])
            for r in self._rows(stmt)
        ]

    def _delivery_counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        """Deliveries per state of each of these runs."""
        out: dict[int, dict[str, int]] = {}
        if run_ids:
            stmt = (
                select(dtab.c.run_id, dtab.c.state, func.count().label("n"))
                .where(dtab.c.run_id.in_(run_ids))
                .group_by(dtab.c.run_id, dtab.c.state)
            )
            for r in self._rows(stmt):
                out.setdefault(int(r["run_id"]), {})[r["state"]] = int(r["n"])
        return out
