# -*- coding: utf-8 -*-
# Copyright: agentfleet.rollout contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of the engine inside the ``ansible-playbook`` that started it.

Ansible's worker processes call ``setsid()``: a SIGKILL of the
``ansible-playbook`` process group does not reach the worker running a task,
and a long task (a whole wave) would go on asking, gating and reverting as an
orphan nobody can see. A :class:`Run` ties the engine's work to its
controller:

- :meth:`Run.check` is called before every request (the agent client's
  guard) and around every wait: it raises :class:`ControllerGone` when the
  ``ansible-playbook`` process that started the task is gone (the worker was
  re-parented), :class:`Interrupted` once SIGTERM or SIGINT asked the run to
  stop, and whatever the state's fence raises when a newer run of the same
  deployment has taken over (:class:`._state.StaleRunError`).
- :meth:`Run.sleep` is an interruptible wait that checks the controller every
  quarter second.
- :meth:`Run.attached` (the action plugins) installs the SIGTERM/SIGINT
  handlers that turn a cancel into a stop between two steps, and on Linux asks
  the kernel (``PR_SET_PDEATHSIG``) to signal the worker when its parent dies.

Every request of a run carries the run's id in the ``X-Agentfleet-Run``
header: one id per ``ansible-playbook`` process (``AGENTFLEET_RUN_ID`` when
set), so the agents' logs tell two runs of the same deployment apart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType
    from typing import Any
    from typing import Callable
    from typing import Dict
    from typing import Iterator
    from typing import Optional
    from typing import Union

    # what signal.signal() takes and returns
    _Handler = Union[Callable[[int, Optional[FrameType]], Any], int, None]

RUN_HEADER = "X-Agentfleet-Run"
RUN_ID_ENV = "AGENTFLEET_RUN_ID"
# how often a wait looks at the controller (seconds)
POLL = 0.25
# the signal the kernel sends the worker when the controller dies (Linux): not SIGTERM, so that a
# controller's death is told apart from a cancel (which stops the run gracefully)
DEATH_SIGNAL = signal.SIGUSR2
_PR_SET_PDEATHSIG = 1
# after the controller's death (and no stop requested), the most seconds an attached worker lives on
# to finish the requests in flight before it ends itself
ORPHAN_GRACE = 1.0


class RunStopped(Exception):
    """The run must stop now; nothing after this may touch an agent (except an interrupt's cleanup)."""


class ControllerGone(RunStopped):
    """The ``ansible-playbook`` process that started this run has died: stop at once, send nothing."""


class Interrupted(RunStopped):
    """SIGTERM or SIGINT asked the run to stop between two steps."""


class OperatorStop(Interrupted):
    """An operator paused or failed the deployment (``status``) from another process: the run stops cleanly."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (Linux), else None."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            data = fh.read()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
    fields = data.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def controller_run_id(pid: int) -> str:
    """The run id of the ``ansible-playbook`` process ``pid``: the same in every worker it forks.

    ``AGENTFLEET_RUN_ID`` when set (a CI job or AWX job id); else derived from the host name, the
    pid and (Linux) the process's start time, so that a later process reusing the pid differs.
    """
    given = os.environ.get(RUN_ID_ENV)
    if given:
        return given.strip()
    key = "%s/%s/%s" % (socket.gethostname(), pid, _start_time(pid))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "agentfleet-run:" + key))


def _set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)`` on Linux; False where it is not available."""
    if not os.path.exists("/proc/self"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        status: int = libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        return status == 0
    except (OSError, AttributeError, TypeError):
        return False


class Run:
    """The liveness, stop flag and fence of one engine run (see the module's documentation).

    ``controller_pid`` None: a run with no controller to watch (unit tests, a module run on its own).
    """

    def __init__(self, controller_pid: Optional[int] = None, run_id: Optional[str] = None,
                 monotonic: Callable[[], float] = time.monotonic, poll: float = POLL) -> None:
        self.controller_pid = controller_pid
        self.run_id = run_id or str(uuid.uuid4())
        self.monotonic = monotonic
        self.poll = float(poll)
        # the state's fence (see the module's documentation), called by :meth:`check`
        self.fence: Optional[Callable[[], object]] = None
        self.deployment_id: Optional[str] = None
        self.step: Optional[str] = None
        self.signal_name: Optional[str] = None
        self._stopping = False
        self._wake = threading.Event()
        self._dead = False
        self._cleanup = False
        self._attached = False
        self._watchdog: Optional[threading.Timer] = None

    @classmethod
    def of_controller(cls) -> Run:
        """The run of the worker's parent, the ``ansible-playbook`` process (call before any work)."""
        pid = os.getppid()
        return cls(controller_pid=pid, run_id=controller_run_id(pid))

    # -- state ---------------------------------------------------------------
    def controller_alive(self) -> bool:
        """Whether the process that started the run is still this process's parent."""
        if self._dead:
            return False
        if self.controller_pid is None:
            return True
        if os.getppid() != self.controller_pid:
            # re-parented (to init or a subreaper): the controller has died
            self._controller_died()
            return False
        return True

    def _controller_died(self) -> None:
        self._dead = True
        self._wake.set()
        if self._attached and self._watchdog is None:
            # a request in flight may not hold an orphan for its whole timeout
            self._watchdog = threading.Timer(ORPHAN_GRACE, self._orphan_end)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _orphan_end(self) -> None:
        if not self.stopping:
            os._exit(1)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self, signal_name: str) -> None:
        """Ask the run to stop at its next check (a signal handler's work: sets two flags, nothing else)."""
        if self.signal_name is None:
            self.signal_name = signal_name
        self._stopping = True
        self._wake.set()

    def check(self) -> None:
        """Raise when the run must not go on; called before every request and around every wait.

        A requested stop (SIGTERM/SIGINT) wins over a dead controller: a cancel is cleaned up
        (agents started again, the state says where it stopped) even when the controller has
        died meanwhile; a controller killed without a cancel stops the run at once.
        """
        if not self.stopping and not self.controller_alive():
            raise ControllerGone("the ansible-playbook process (pid %s) that started this run is gone: run %s stops"
                                 % (self.controller_pid, self.run_id))
        if self.fence is not None:
            self.fence()
        if self.stopping and not self._cleanup:
            raise Interrupted("interrupted by %s%s" % (self.signal_name or "a signal",
                                                       (" during %s" % self.step) if self.step else ""))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, waking at once on a stop and within ``poll`` seconds of the controller's death."""
        self.check()
        end = self.monotonic() + max(0.0, float(seconds))
        while True:
            left = end - self.monotonic()
            if left <= 0:
                break
            if self._wake.wait(min(left, self.poll)) or not self.controller_alive():
                break
        self.check()

    def progress(self, fn: Optional[Callable[[str], object]]) -> Optional[Callable[[str], None]]:
        """``fn`` that says nothing once the controller is gone (its output pipe may never be read again)."""
        if fn is None:
            return None

        def emit(text: str) -> None:
            if self.controller_alive():
                fn(text)

        return emit

    @property
    def cleaning(self) -> bool:
        """Whether the run is cleaning up after a stop (its requests pass :meth:`check`)."""
        return self._cleanup

    @contextlib.contextmanager
    def cleaning_up(self) -> Iterator[Run]:
        """Requests of an interrupt's cleanup (starting agents that stopped for us) pass :meth:`check`."""
        self._cleanup = True
        try:
            yield self
        finally:
            self._cleanup = False

    # -- the worker process ------------------------------------------------------
    @contextlib.contextmanager
    def attached(self) -> Iterator[Run]:
        """In the worker's main thread: SIGTERM/SIGINT stop the run between steps; the controller's
        death is signalled (Linux) and noticed by polling everywhere. Restores the handlers after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: Dict[int, _Handler] = {}

        def on_stop(signum: int, frame: Optional[FrameType]) -> None:
            self.request_stop(signal.Signals(signum).name)

        def on_death(signum: int, frame: Optional[FrameType]) -> None:
            # no stop was requested: check() sees the dead controller and the run stops at once
            self._controller_died()

        for signum, handler in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (DEATH_SIGNAL, on_death)):
            previous[signum] = signal.signal(signum, handler)
        armed = _set_parent_death_signal(DEATH_SIGNAL)
        self._attached = True
        try:
            # the controller may have died before the guard was armed
            self.controller_alive()
            yield self
        finally:
            self._attached = False
            if self._watchdog is not None:
                self._watchdog.cancel()
            if armed:
                _set_parent_death_signal(0)
            for number, earlier in previous.items():
                signal.signal(number, earlier)
