"""Assembly of the pyln Plugin: options, methods, the notification topic, ``init`` and ``shutdown``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pyln.client import Plugin
from pyln.client.plugin import Method, MethodType, Request

from hashpool_cln.plugin import options
from hashpool_cln.plugin.methods import METHODS, MethodSpec
from hashpool_cln.plugin.params import usage
from hashpool_cln.plugin.service import NOTIFICATION, Service
from hashpool_cln.plugin.wire import GuardedPlugin, RawHandler


class DeclaredMethod(Method):
    """A background method whose usage line is declared, not derived from the handler's signature.

    pyln derives usage from Python defaults and binds parameters itself; ours get the request's params as they
    came (``raw``, see ``wire.GuardedPlugin``) and bind them in ``params.bind``, so that a wrong call gets -32602
    instead of pyln's traceback.
    """

    def __init__(self, name: str, raw: RawHandler, description: str = "", usage_line: str = "") -> None:
        super().__init__(name, _unbound, MethodType.RPCMETHOD, description=description)
        self.background = True
        self.raw = raw
        self.usage_line = usage_line

    def get_usage(self) -> str:
        # As pyln lays it out: usage, then the help text, which `lightning-cli help <method>` shows.
        return f"{self.usage_line} \n {self.description}".lstrip()


def build() -> tuple[Plugin, Service]:
    plugin = GuardedPlugin(dynamic=True)
    service = Service(plugin)
    options.register(plugin)
    # Replaces pyln's own setconfig handler (see Service.setconfig); lightningd sends it for dynamic options.
    plugin.methods["setconfig"] = DeclaredMethod("setconfig", _setconfig_handler(service))
    plugin.add_notification_topic(NOTIFICATION)
    for spec in METHODS:
        if spec.name in plugin.methods:
            raise ValueError(f"method {spec.name} declared twice")
        plugin.methods[spec.name] = DeclaredMethod(spec.name, _handler(service, spec), spec.help,
                                                   usage(spec.params))

    def init(options: dict[str, Any], configuration: dict[str, Any], plugin: Plugin, **kwargs: Any) -> Any:
        return service.init(options, configuration)

    def shutdown(plugin: Plugin, **kwargs: Any) -> None:
        service.shutdown()
        sys.exit(0)

    plugin.init()(init)
    plugin.add_subscription("shutdown", shutdown)
    return plugin, service


def _handler(service: Service, spec: MethodSpec) -> RawHandler:
    def handle(request: Request, params: Any) -> None:
        args, kwargs = _split(params)
        service.call(request, spec, args, kwargs)

    return handle


def _setconfig_handler(service: Service) -> RawHandler:
    def setconfig(request: Request, params: Any) -> None:
        args, kwargs = _split(params)
        given = {**dict(zip(("config", "val"), args)), **kwargs}
        service.setconfig(request, given.get("config"), given.get("val"))

    return setconfig


def _split(params: Any) -> tuple[list[Any], dict[str, Any]]:
    """A request's params as positional and keyword parameters (the wire has checked they are one of the two)."""
    return (list(params), {}) if isinstance(params, list) else ([], dict(params))


def _unbound(*args: Any, **kwargs: Any) -> None:
    """What pyln would call for a declared method; ``GuardedPlugin`` calls ``raw`` instead."""
    raise RuntimeError("declared methods are dispatched through their raw handler")


def run() -> None:
    # Threads that read or prepare a large token hand the interpreter back to the event loop within 1 ms rather
    # than the default 5 ms, so that other calls wait less while one is being worked on.
    sys.setswitchinterval(0.001)
    # pyln forwards Python logging to lightningd, which filters by its own log-level; let ours through.
    for name in ("hashpool", "hashpool_cln"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    plugin, service = build()
    try:
        plugin.run()
    finally:
        # stdin closed with no shutdown notification: lightningd is gone and nobody waits for an answer, so the
        # desk is closed at once (its ledger shut cleanly) rather than left to the interpreter's exit.
        service.shutdown(grace=0.0)
