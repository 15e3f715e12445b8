"""Assembly of the pyln Plugin: options, methods, the notification topic, ``init`` and ``shutdown``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from pyln.client import Plugin
from pyln.client.plugin import Method, MethodType

from hashpool_cln.plugin import options
from hashpool_cln.plugin.methods import METHODS, MethodSpec
from hashpool_cln.plugin.params import usage
from hashpool_cln.plugin.service import NOTIFICATION, Service


class DeclaredMethod(Method):
    """A background method whose usage line is declared, not derived from the handler's signature.

    pyln derives usage from Python defaults and binds parameters itself; our handlers take ``*args, **kwargs``
    and bind in ``params.bind`` so that a wrong call gets -32602 instead of pyln's traceback.
    """

    def __init__(self, spec: MethodSpec, func: Callable[..., None]) -> None:
        super().__init__(spec.name, func, MethodType.RPCMETHOD, description=spec.help)
        self.background = True
        self.usage_line = usage(spec.params)

    def get_usage(self) -> str:
        # As pyln lays it out: usage, then the help text, which `lightning-cli help <method>` shows.
        return f"{self.usage_line} \n {self.description}".lstrip()


def build() -> tuple[Plugin, Service]:
    plugin = Plugin(dynamic=True)
    service = Service(plugin)
    options.register(plugin)
    # Replaces pyln's own setconfig handler (see Service.setconfig); lightningd sends it for dynamic options.
    setconfig = Method("setconfig", _setconfig_handler(service), MethodType.RPCMETHOD)
    setconfig.background = True
    plugin.methods["setconfig"] = setconfig
    plugin.add_notification_topic(NOTIFICATION)
    for spec in METHODS:
        if spec.name in plugin.methods:
            raise ValueError(f"method {spec.name} declared twice")
        plugin.methods[spec.name] = DeclaredMethod(spec, _handler(service, spec))

    def init(options: dict[str, Any], configuration: dict[str, Any], plugin: Plugin, **kwargs: Any) -> Any:
        return service.init(options, configuration)

    def shutdown(plugin: Plugin, **kwargs: Any) -> None:
        service.shutdown()
        sys.exit(0)

    plugin.init()(init)
    plugin.add_subscription("shutdown", shutdown)
    return plugin, service


def _handler(service: Service, spec: MethodSpec) -> Callable[..., None]:
    def handle(plugin: Plugin, request: Any, *args: Any, **kwargs: Any) -> None:
        service.call(request, spec, args, kwargs)

    handle.__name__ = spec.name.replace("-", "_")
    handle.__doc__ = spec.help
    return handle


def _setconfig_handler(service: Service) -> Callable[..., None]:
    def setconfig(plugin: Plugin, request: Any, config: Any = None, val: Any = None, **kwargs: Any) -> None:
        service.setconfig(request, config, val)

    return setconfig


def run() -> None:
    # pyln forwards Python logging to lightningd, which filters by its own log-level; let ours through.
    for name in ("hashpool", "hashpool_cln"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    plugin, _ = build()
    plugin.run()
