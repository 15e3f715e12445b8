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
        for _ in range(100):
            if rounds:
                break
            await asyncio.sleep(0.05)
        assert rounds and rounds[0] == 1
    finally:
        watcher.cancel()


async def test_paid_redemptions_are_settled_together_at_the_batch_interval(monkeypatch, tmp_path) -> None:
    from hashpool_cln.plugin import options

    settles = []

    class PaidDesk(IdleDesk):
        async def settle(self) -> dict:
            settles.append(1)
            return {"settled": [], "waiting": []}

    monkeypatch.setattr(service, "WATCH_PAYING", 0.02)
    monkeypatch.setattr(service, "WATCH_IDLE", 30.0)
    host = service.Service(None)
    host.settings = options.resolve({options.MINT_URL: "http://127.0.0.1:3338", options.POOL: ["02" + "ab" * 32],
                                     options.SETTLE_BATCH: 1}, str(tmp_path))
    assert host._desk_config().settle == "batch"
    watcher = asyncio.get_running_loop().create_task(host._watch(PaidDesk()))
    try:
        await asyncio.sleep(0.5)
        assert settles == []  # not before the interval
        for _ in range(100):
            if settles:
                break
            await asyncio.sleep(0.05)
        assert len(settles) == 1
    finally:
        watcher.cancel()
    host.settings = options.resolve({options.MINT_URL: "http://127.0.0.1:3338", options.POOL: ["02" + "ab" * 32]},
                                    str(tmp_path))
    assert host._desk_config().settle == "immediate"  # the default: each after its payment
