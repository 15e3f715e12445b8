#!/usr/bin/env python3
"""Test plugin for the payee node: holds every incoming invoice payment until a file ``release`` appears in the
node's network directory (its working directory), so the payer's HTLC stays in flight meanwhile."""

import os
import time

from pyln.client import Plugin

plugin = Plugin()


@plugin.hook("invoice_payment")
def on_payment(payment, plugin, **kwargs):
    plugin.log(f"holding payment {payment.get('label')}")
    while not os.path.exists("release"):
        time.sleep(0.2)
    return {"result": "continue"}


plugin.run()
