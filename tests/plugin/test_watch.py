"""The background watcher: a payment put in flight while the desk was idle is looked at within a short nap."""

from __future__ import annotations

import asyncio

from hashpool_cln.desk import recovery
from hashpool_cln.plugin import service


class IdleDesk:
    def __init__(self) -> None:
        self.paying = 0

    def in_flight(self) -> int:
        return self.paying


async def test_a_payment_in_flight_is_looked_at_within_the_short_nap(monkeypatch) -> None:
    rounds = []

    async def reconcile(desk) -> dict:
        rounds.append(desk.in_flight())
        return {}

    monkeypatch.setattr(recovery, "reconcile", reconcile)
    monkeypatch.setattr(service, "WATCH_PAYING", 0.02)
    monkeypatch.setattr(service, "WATCH_IDLE", 30.0)
    desk = IdleDesk()
    watcher = asyncio.get_running_loop().create_task(service.Service(None)._watch(desk))
    try:
        await asyncio.sleep(0.2)
        assert rounds == []  # idle: nothing to look at before the idle wait ends
        desk.paying = 1  # a payment starts while the watcher is in the middle of an idle wait
        await asyncio.sleep(0.2)
        assert rounds and rounds[0] == 1
    finally:
        watcher.cancel()
