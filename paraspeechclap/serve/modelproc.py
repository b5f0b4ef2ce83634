"""The model in a process of its own, so that the event loop and the forward passes never share a GIL.

Under a flood of requests the event loop holds the GIL most of the time, and a forward pass in the same process
waits for it between every operator (the score's p99 grew tenfold under attack, half of it GIL wait). Here the
front process keeps a copy of the model for what is cheap (decoding, provenance, the attribute table) and
:class:`ModelProcess` runs every forward pass in a child process that loaded the same :class:`ModelSpec`: each
thread of the front (a model lane) gets its own connection, answered by a thread of its own in the child, so the two
lanes still run side by side. The child dies with the front (``PR_SET_PDEATHSIG``); a child that died (killed,
out of memory) fails the jobs it held with a 503 and is started again for the next ones.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
from multiprocessing.connection import Client, Listener
from typing import Any, Iterator, Sequence

from ..inference.loop import check_texts
from ..inference.text_cache import TextCache
from ..kernels.malloc import release_freed_memory
from .batcher import item_seconds, lower_thread_priority, thread_clock, thread_priority
from .errors import ApiError
from .yielding import GATE, SharedCount, yield_between_ops

log = logging.getLogger(__name__)

TRIM_SECONDS = 30.0     # after a batch of this much audio the child gives its freed heap back (as the server does
                        # after a large decode); small batches keep theirs, or every forward pass faults it in again
RESTART_WAIT = 2.0      # seconds a child whose connection broke is given to exit before it counts as alive
FRONT_TEXTS = 2048      # text embeddings the front keeps (the model process keeps its own, larger cache)
START_TIMEOUT = 600.0   # seconds a model may take to load in the child (a first download of the paper-size model)
NICE = "nice"   # the first request on a connection: its thread takes the CPU priority of the front thread it serves
# what the front may ask of the child: the forward passes and what is built on them, never anything else
MODEL_OPS = ("embed_audio", "embed_text", "embed_prompts", "classify_embeddings")   # the model's own methods
OPS = ("embed_many", *MODEL_OPS)   # embed_many: the engine's bulk loop


# ---------------------------------------------------------------------------------------------- the child process
def main() -> None:
    """The child: ``(spec, authkey, parent pid)`` pickled on stdin; ``("ready", address)`` or ``("error", why)``
    pickled on stdout; then every connection answered on a thread of its own. Started with ``python -m`` rather
    than multiprocessing's spawn, which would import the user's ``__main__`` again."""
    from ..lifetime import die_with_parent
    from .http import limit_malloc_arenas

    spec, authkey, parent, busy = pickle.load(sys.stdin.buffer)
    die_with_parent(parent)
    if busy is not None:   # the front's express work, which the niced thread here also steps aside for
        GATE.watch = SharedCount(busy)
    limit_malloc_arenas()   # as the server does: before any thread starts
    reply = sys.stdout.buffer
    sys.stdout = sys.stderr   # a library that prints must not write into the reply
    try:
        model = spec.load()
        listener = Listener(_address(), family="AF_UNIX", backlog=64, authkey=authkey)
    except BaseException as err:  # noqa: BLE001 - the front reports why the model did not load
        pickle.dump(("error", f"{type(err).__name__}: {err}"), reply)
        reply.flush()
        return
    pickle.dump(("ready", listener.address), reply)
    reply.flush()
    while True:
        try:
            conn = listener.accept()
        except OSError:   # a connection that failed its handshake: wait for the next
            continue
        threading.Thread(target=_answer, args=(model, conn), daemon=True, name="paraspeechclap-model-ops").start()


def _address() -> str | None:
    """An abstract socket on Linux (no file to leave behind if the child is killed), else a temporary file's."""
    return f"\0paraspeechclap-model-{os.getpid()}-{os.urandom(8).hex()}" if sys.platform.startswith("linux") else None


def _answer(model: Any, conn: Any) -> None:
    """One front thread's requests, in order: ``(op, args, kwargs)`` -> ``(status, result, (cpu_ns, runq_ns))``."""
    while True:
        try:
            op, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        before = thread_clock()
        try:
            with contextlib.nullcontext() if GATE.is_yielding() else GATE.prompt():
                reply = ("ok", _run(model, op, args, kwargs))
        except Exception as err:  # noqa: BLE001 - handed to the request that asked
            reply = ("error", _portable(err))
        if op == "embed_many" and sum(item_seconds(item) for item in args[0]) >= TRIM_SECONDS:
            release_freed_memory()
        after = thread_clock()
        clock = (after[0] - before[0], after[1] - before[1]) if before and after else None
        try:
            conn.send((*reply, clock))
        except (OSError, ValueError):
            return
        except Exception as err:  # noqa: BLE001 - a result that does not pickle
            conn.send(("error", RuntimeError(f"the result of {op} could not be sent: {err}"), clock))


def _run(model: Any, op: str, args: tuple, kwargs: dict) -> Any:
    if op == NICE:   # a niced connection's work also yields to the others' (:mod:`.yielding`)
        if int(args[0]) > 0:
            GATE.yielding()
            yield_between_ops()
        return lower_thread_priority(int(args[0]))
    if op not in OPS:
        raise ValueError(f"not an operation of the model process: {op!r}")
    if op == "embed_many":
        from ..inference import embed_items

        return list(embed_items(model, *args, **kwargs))
    return getattr(model, op)(*args, **kwargs)


def _portable(err: Exception) -> Exception:
    """``err`` itself when it survives a pickle round trip (a ValueError about a template, an AudioError), else a
    RuntimeError with its words."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(err).__name__}: {err}")


# ---------------------------------------------------------------------------------------------- the front's side
class ModelProcess:
    """The child process and the front threads' connections to it (one per thread, made on first use)."""

    def __init__(self, spec: Any, start_timeout: float = START_TIMEOUT):
        self.spec, self.start_timeout = spec, float(start_timeout)
        self.restarts, self.generation, self.closed = 0, 0, False
        self._lock = threading.Lock()
        self._local = threading.local()
        self._start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _start(self) -> None:
        self.authkey = os.urandom(32)
        busy = GATE.shared()
        fds = (busy.fd,) if busy is not None else ()
        self.process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, pass_fds=fds)
        try:
            pickle.dump((self.spec, self.authkey, os.getpid(), fds[0] if fds else None), self.process.stdin)
            self.process.stdin.close()
            if not _readable(self.process.stdout, self.start_timeout):
                raise RuntimeError(f"the model process did not load {self.spec.source} within "
                                   f"{self.start_timeout:g} s")
            status, payload = pickle.load(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            self.process.kill()
            raise RuntimeError(f"the model process exited while loading {self.spec.source} "
                               f"(exit code {self.process.wait()})") from None
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.process.stdout.close()
        if status != "ready":
            self.process.wait(5)
            raise RuntimeError(f"the model process could not load {self.spec.source}: {payload}")
        self.address, self.generation = payload, self.generation + 1

    def _connection(self) -> Any:
        local = self._local
        if getattr(local, "generation", None) != self.generation:
            if getattr(local, "conn", None) is not None:
                local.conn.close()
            local.conn, local.generation = Client(self.address, family="AF_UNIX", authkey=self.authkey), \
                self.generation
            local.conn.send((NICE, (thread_priority(),), {}))   # a thread at --bulk-nice is as nice there
            local.conn.recv()
        return local.conn

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """``op`` on the child's model, from this thread; a 503 when the child died meanwhile (it is restarted)."""
        try:
            with self._lock:
                conn = self._connection()
            conn.send((op, args, kwargs))
            status, payload, clock = conn.recv()
        except (EOFError, OSError) as err:
            self._local.generation = None
            why = f"{type(err).__name__}: {err}" if str(err) else "it exited"
            restarted = self._restart()
            raise ApiError(503, "model_restarted" if restarted else "model_unavailable",
                           f"the model process stopped during this request ({why}); "
                           + ("it has been started again: retry" if restarted else "retry")) from None
        if clock is not None:
            cpu, runq = getattr(self._local, "clock", (0, 0))
            self._local.clock = (cpu + clock[0], runq + clock[1])
        if status == "error":
            raise payload
        return payload

    def _restart(self) -> bool:
        """Start another child if this one has exited (True), else leave it (False)."""
        with self._lock:
            try:   # a broken connection: the child is gone or on its way (give its exit a moment to be seen)
                self.process.wait(RESTART_WAIT)
            except subprocess.TimeoutExpired:
                pass
            if self.closed or self.alive():
                return False
            log.error("the model process %s exited (code %s): starting another", self.process.pid,
                      self.process.returncode)
            self.restarts += 1
            self._start()
            return True

    def thread_clock(self) -> tuple[int, int] | None:
        """This thread's CPU and run-queue time (ns) plus its requests' in the child: what a model job cost."""
        local = thread_clock()
        if local is None:
            return None
        cpu, runq = getattr(self._local, "clock", (0, 0))
        return local[0] + cpu, local[1] + runq

    def health(self) -> dict:
        return {"pid": self.process.pid, "alive": self.alive(), "restarts": self.restarts}

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self.closed = True
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def _readable(stream: Any, timeout: float) -> bool:
    return bool(select.select([stream], [], [], timeout)[0])


class _RemoteEngine:
    """The local engine (decoding, lengths, windows), with its bulk loop run in the model process."""

    def __init__(self, engine: Any, process: ModelProcess):
        self._engine, self._process = engine, process

    def embed_many(self, items: Sequence[Any], batch_size: int | None = None, progress: bool = False,
                   total: int | None = None) -> Iterator[Any]:
        return iter(self._process.call("embed_many", list(items), batch_size=batch_size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class RemoteModel:
    """The front's model: its forward passes in :class:`ModelProcess`, everything else (provenance, config,
    decoding) from the local copy."""

    def __init__(self, model: Any, process: ModelProcess):
        self._model, self.process = model, process
        self.engine = _RemoteEngine(model.engine, process)
        self._texts = TextCache(FRONT_TEXTS)

    def embed_text(self, texts: str | Sequence[str], batch_size: int = 64) -> Any:
        """Text embeddings, the ones embedded before kept here too: a score's captions are mostly repeated, and
        each round trip to the model process waits for this process's GIL, which a busy event loop holds."""
        texts = check_texts(texts)
        if not texts:
            return self.process.call("embed_text", texts, batch_size=batch_size)
        return self._texts.get_many(texts, self.process.generation,
                                    lambda missing: self.process.call("embed_text", missing, batch_size=batch_size))

    def thread_clock(self) -> tuple[int, int] | None:
        return self.process.thread_clock()

    def __getattr__(self, name: str) -> Any:
        if name in MODEL_OPS:
            return functools.partial(self.process.call, name)
        return getattr(self._model, name)


if __name__ == "__main__":
    main()
