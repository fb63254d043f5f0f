"""Stopping long native calls: Ctrl-C / SIGTERM on the main thread, or a token from another thread.

Every long native call (a fit, a render) gets its own native cancel token, so stopping one call never
stops another thread's. Two things set it:

* a :class:`CancelToken` the calling thread entered (``with token:``); ``token.cancel()`` from any
  thread makes the calls inside the block raise :class:`~splatcodec.errors.CancelledError`;
* on the main thread, any exception a signal handler raises while the call runs (KeyboardInterrupt
  from Ctrl-C, the CLI's SIGTERM handler): the native call runs in a worker thread, the main thread
  waits in short lock waits (Python's signal handlers run between them), cancels the token, waits
  until the worker has left the native code, and only then re-raises. So no thread is ever left
  inside the core when the interpreter shuts down (which aborted the process with "terminate called
  without an active exception"), and no fit keeps burning CPU after Ctrl-C.

The worker is a bare ``_thread`` thread waited for with a bare lock: ``Thread.start`` and ``Thread.join``
are not safe against exceptions raised by signal handlers (on CPython 3.11 an interrupted join can
mark a running thread stopped, an interrupted start can corrupt its Condition). The worker only enters
the core if it claims the call before the main thread gives up on it; and a hook that runs before the
interpreter shuts down cancels every call still running and waits for it, so even a signal arriving
in the few bytecodes no handler can cover does not abort the process.
"""
from __future__ import annotations

import _thread
import contextvars
import threading
from typing import Any, Callable, TypeVar

from .errors import CancelledError

T = TypeVar("T")

_current: contextvars.ContextVar["CancelToken | None"] = contextvars.ContextVar("splatcodec_cancel", default=None)
#: Seconds between the main thread's checks for signals while a native call runs.
POLL_SECONDS = 0.05
class _Call:
    """State shared by the caller and the worker of one call, touched only through operations that
    an exception from a signal handler cannot leave half done: dict.setdefault and item assignment
    (atomic under the GIL) and a bare ``_thread`` lock. (``threading.Event`` is not such a thing: a
    handler raising inside ``Event.wait`` can leave its Condition's lock held, and the worker's
    ``set()`` then blocks forever.)"""

    def __init__(self, native_token: Any) -> None:
        self.native_token = native_token
        self.claim: dict[str, str] = {}  # "owner": whoever comes first decides if the core is entered
        self.state: dict[str, Any] = {}  # "done", then "value" or "error"
        self.wakeup = _thread.allocate_lock()
        self.wakeup.acquire()  # released once by the worker when it is done

    def finished(self) -> bool:
        return "done" in self.state

    def wait(self) -> None:
        """Until the worker is done; a handler's exception propagates (the state stays consistent)."""
        while not self.finished():
            self.wakeup.acquire(timeout=POLL_SECONDS)  # acquired or not, the flag decides

    def stop(self) -> None:
        """Keeps the worker out of the core, or cancels it and waits until it has left; retried
        through further signals."""
        while True:
            try:
                self.native_token.cancel()
                if self.claim.setdefault("owner", "main") == "worker":
                    self.wait()
                return
            except BaseException:
                continue


#: The calls handed to worker threads and not finished yet.
_live: dict[int, _Call] = {}


def _stop_live_calls() -> None:
    """Cancels the calls still running on workers and waits until they have left the core."""
    for call in list(_live.values()):
        call.stop()


# Runs before the interpreter finalizes (a private hook of threading, present since 3.9).
getattr(threading, "_register_atexit", lambda f: None)(_stop_live_calls)


class CancelToken:
    """Cancels the splatcodec calls made inside ``with token:`` blocks, from any thread.

    >>> token = splatcodec.CancelToken()
    >>> def work():
    ...     with token:
    ...         splatcodec.encode(image)   # raises CancelledError once token.cancel() is called
    >>> threading.Thread(target=work).start(); token.cancel()

    A token may be entered by several threads at once; once cancelled it stays cancelled (calls
    entering it later raise at once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._running: set[Any] = set()  # native tokens of calls in progress
        self._scopes = threading.local()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop every call running inside this token's blocks (thread-safe, idempotent)."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for native in running:
            native.cancel()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`CancelledError` if the token was cancelled (for Python loops between calls)."""
        if self._cancelled:
            raise CancelledError("cancelled")

    def __enter__(self) -> "CancelToken":
        stack = getattr(self._scopes, "stack", None)
        if stack is None:
            stack = self._scopes.stack = []
        stack.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._scopes.stack.pop())

    def _attach(self, native: Any) -> None:
        with self._lock:
            if self._cancelled:
                raise CancelledError("cancelled")
            self._running.add(native)

    def _detach(self, native: Any) -> None:
        with self._lock:
            self._running.discard(native)


def current() -> CancelToken | None:
    """The token the calling thread entered last (None outside ``with token:``)."""
    return _current.get()


def run_cancellable(call: Callable[[Any], T], native_token: Any) -> T:
    """Runs ``call(native_token)`` so that it can be stopped: by the entered :class:`CancelToken`,
    and on the main thread by any exception a signal handler raises (re-raised once it has stopped)."""
    scope = current()
    if scope is not None:
        scope._attach(native_token)
    try:
        if threading.current_thread() is not threading.main_thread():
            return call(native_token)
        return _on_worker(call, native_token)
    finally:
        if scope is not None:
            scope._detach(native_token)


def _on_worker(function: Callable[[Any], T], native_token: Any) -> T:
    call = _Call(native_token)

    def work() -> None:
        try:
            if call.claim.setdefault("owner", "worker") == "worker":
                call.state["value"] = function(native_token)
        except BaseException as exc:  # handed to the caller's thread below
            call.state["error"] = exc
        finally:
            _live.pop(id(call), None)
            call.state["done"] = True
            call.wakeup.release()

    _live[id(call)] = call
    try:
        _thread.start_new_thread(work, ())  # one C call: a signal comes before or after it
        call.wait()
    except BaseException:
        # Ctrl-C, an exception from a SIGTERM handler...: stop the native call, wait until it has
        # returned (it polls the token between iterations and tiles), then re-raise.
        call.stop()
        _live.pop(id(call), None)
        raise
    if "error" in call.state:
        raise call.state["error"]
    return call.state["value"]
