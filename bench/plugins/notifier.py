#!/usr/bin/env python3
"""Benchmark plugin: ``notify-burst n`` sends ``n`` custom notifications shaped like the desk's
``hashpool_redemption``, so that lightningd's cost per notification can be measured apart from a redemption."""

from pyln.client import Plugin

plugin = Plugin()
plugin.add_notification_topic("hashpool_redemption")
EVENT = {"id": "0" * 32, "state": "paying", "old_state": "custody", "units": 1_010, "amount_msat": 1_000_000}


@plugin.method("notify-burst")
def notify_burst(plugin, n=6, **kwargs):
    for _ in range(int(n)):
        plugin.notify("hashpool_redemption", {"hashpool_redemption": EVENT})
    return {"sent": int(n)}


plugin.run()
