"""Stopping a sweep on SIGINT or SIGTERM without leaving half-written bookkeeping.

The CLI installs the signal handlers (it is the only code that touches the process
environment); each handler hands an `Interrupted` to a `Deferral`. Outside a held section the
exception is raised at once, so a trial in training stops at its next step. Inside one (the few
milliseconds in which Keras Tuner, the sweep state file and MLflow record a trial's start or end)
it waits until the section ends, so the three never disagree about a trial.

An interrupt raised inside TensorFlow's C++ (a signal handler runs between two Python steps, and
TF calls back into Python while it traces a model) can come out as another error: a SystemError,
or a TypeError from a tensor conversion. Keras Tuner records any error as a failed trial and goes
on to the next, so a worker stopped by its chief trained on. Code that must stop on an interrupt
runs inside `Deferral.unmasking`, which raises the interrupt again from such an error.

A held section that waits on another process (a worker asking its chief's oracle for a trial)
may wait for ever: the chief is gone. Once the other process has not answered for a while, such a
call raises the interrupt that waits (`Deferral.give_up`), as a ``kill`` would stop the worker:
the chief already tells that apart (the trial's run is closed as lost, and it runs again).
"""

from __future__ import annotations

from contextlib import contextmanager


class Deferral:
    """Raises an interrupt at once, or at the end of the held section it arrives in."""

    def __init__(self):
        self._depth = 0
        self._pending: BaseException | None = None
        self._raised: BaseException | None = None  # the interrupt raised, kept in case it is masked

    def interrupt(self, exc: BaseException) -> None:
        """Called from a signal handler: raise ``exc`` now, or when the held section ends. Once
        one interrupt has been raised, a later one waits too: it would cut short the clean-up
        of the first (Ctrl-C reaches a chief's workers, then the chief's own SIGTERM does)."""
        if self._depth or self._raised is not None:
            self._pending = self._pending or exc
            return
        self._raised = exc
        raise exc

    def enter(self) -> None:
        self._depth += 1

    def leave(self) -> None:
        """End one held section; a pending interrupt is raised once none is held."""
        self._depth = max(0, self._depth - 1)
        if not self._depth and self._pending is not None:
            exc, self._pending = self._pending, None
            self._raised = exc
            raise exc

    @contextmanager
    def hold(self, drop: bool = False):
        """Defer interrupts while the block runs; ``drop``: forget those that arrived meanwhile."""
        self.enter()
        try:
            yield
        finally:
            if drop:
                self._pending = None
            self.leave()

    def give_up(self) -> None:
        """Raise now, whatever section is held, an interrupt that waits for one to end or that was
        raised already (its clean-up is under way): for a call in a held section whose other
        process stopped answering, and may never answer (a worker's chief that is gone)."""
        exc = self._raised or self._pending  # the first one, as `raise_lost` raises
        if exc is not None:
            self._pending, self._raised = None, exc
            raise exc

    def raise_lost(self) -> None:
        """Raise again an interrupt raised where Python could not deliver it: a signal handler
        that ran inside a finalizer, or inside the hook reporting one (``Exception ignored in
        sys.unraisablehook``), while TensorFlow trained; or one that waited behind it. Called
        between training steps, where no clean-up runs."""
        if not self._depth and (self._raised or self._pending) is not None:
            raise self._raised or self._pending

    def reset(self) -> None:
        """Forget held sections (after an exception escaped one); keep a pending interrupt."""
        self._depth = 0

    @contextmanager
    def unmasking(self):
        """Once an interrupt was raised, an error escaping the block raises that interrupt instead
        (chained from the error): the error is what TensorFlow made of it."""
        try:
            yield
        except Exception as error:
            if self._raised is None:
                raise
            raise self._raised from error
