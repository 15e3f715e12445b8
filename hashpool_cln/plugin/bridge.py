"""One asyncio loop in a thread, and the rule by which every plugin request is answered from it.

pyln reads lightningd's requests on its own (blocking) thread and hands each background method a ``Request``.
Handlers here only schedule a coroutine on the loop; the coroutine's outcome answers the request exactly once,
in a ``finally``, whatever happens. Errors are written as plain JSON-RPC errors ``{code, message, data}``:
pyln's ``set_exception`` would add a ``traceback`` member (lightningd forwards error objects verbatim to the
caller) and has no room for ``data``. Results are written by hand too: pyln's ``set_result`` formats the whole
call stack on every answer (kept to explain a second answer, which ``answer`` refuses itself).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from pyln.client.plugin import Request, RequestState

from hashpool_cln.desk.errors import Code, DeskError

log = logging.getLogger("hashpool.plugin")

# JSON-RPC's "internal error": something the desk did not expect. Details go to the node's log, not the caller.
INTERNAL_ERROR = int(Code.INTERNAL_ERROR)


class ParamError(Exception):
    """A caller's parameter is missing, unknown or malformed (JSON-RPC -32602)."""


class RequestError(Exception):
    """A request the protocol itself refuses (not JSON, not a request, no such method): JSON-RPC's own codes."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC error object the caller sees for ``exc``; never a traceback, never a secret."""
    if isinstance(exc, DeskError):
        return exc.to_json()
    if isinstance(exc, ParamError):
        return {"code": int(Code.INVALID_PARAMS), "message": str(exc)}
    if isinstance(exc, RequestError):
        return {"code": exc.code, "message": exc.message}
    return {"code": INTERNAL_ERROR, "message": "internal error; see the node's log"}


def answer(request: Request, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve ``request`` once: with ``result``, or with the error object for ``error``."""
    if request.state != RequestState.PENDING:
        log.warning("request %s already answered", request.id)
        return
    # Written by hand (see the module docstring), then marked as pyln would, so a second answer is refused.
    if error is None:
        request._write_result({"jsonrpc": "2.0", "id": request.id, "result": result})
        request.state = RequestState.FINISHED
        return
    request._write_result({"jsonrpc": "2.0", "id": request.id, "error": error_body(error)})
    request.state = RequestState.FAILED


class LoopThread:
    """An asyncio event loop running in a daemon thread; the only place the desk's coroutines run."""

    def __init__(self, name: str = "hashpool-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_exception_handler)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._stopped.set()

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future:
        """Schedule ``coro`` on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def call(self, coro: Awaitable[Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result (from another thread only)."""
        return self.submit(coro).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs, stop the loop and wait for the thread."""
        if not self._thread.is_alive():
            return

        async def _cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.call(_cancel_rest(), timeout)
        except Exception as exc:  # the loop may already be wedged; stop it regardless
            log.warning("cancelling pending tasks failed: %s", type(exc).__name__)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._stopped.wait(timeout)


def serve(loop: LoopThread, request: Request, work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work()`` on ``loop`` and answer ``request`` from its outcome, exactly once."""

    async def _run() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = await work()
        except (DeskError, ParamError) as exc:
            error = exc
        except asyncio.CancelledError:
            error = DeskError(Code.SHUTTING_DOWN, "the plugin is stopping; ask hashpool-status later")
        except Exception as exc:
            error = exc
            # The class name only: messages of unexpected errors may quote tokens or URLs with keys.
            log.warning("%s failed unexpectedly: %s", request.method, type(exc).__name__)
        finally:
            answer(request, result, error)

    loop.submit(_run())


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # asyncio's default handler logs at ERROR, which lightningd shows as an error line; these are not.
    exc = context.get("exception")
    what = type(exc).__name__ if exc is not None else context.get("message", "")
    log.warning("background task: %s", what)
