"""The application object: task registry, connection, enqueue and task handles."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, ParamSpec, TypeVar

from redis.cluster import RedisCluster

from taskq import codec
from taskq.admin import AdminMixin
from taskq.clock import Clock, ServerClock
from taskq.connection import Backend, open_redis
from taskq.errors import (
    ConfigurationError,
    InvalidTaskError,
    ResultTimeoutError,
    TaskFailedError,
    TaskNotFoundError,
    UnknownTaskError,
)
from taskq.keys import KeySpace
from taskq.scripts import Scripts
from taskq.settings import DEFAULT_PRIORITY, DEFAULT_SETTINGS, Settings
from taskq.task import Backoff, Call, State, TaskDef, TaskOptions, TaskRecord

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"


def _finite(value: float | None) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value))


def _check_options(options: TaskOptions, max_retries: Any) -> None:
    """Raise ConfigurationError naming the first task option that cannot work."""
    if options.max_retries < 0:
        raise ConfigurationError(f"max_retries={max_retries} must be 0 or more")
    backoff = options.backoff
    for name, value in (("backoff_min_s", backoff.min_s), ("backoff_max_s", backoff.max_s),
                        ("backoff_factor", backoff.factor), ("backoff_jitter", backoff.jitter),
                        ("timeout_s", options.timeout_s), ("result_ttl_s", options.result_ttl_s)):
        if not _finite(value):
            raise ConfigurationError(f"{name}={value!r} must be a finite number")
    if backoff.factor < 1 or backoff.jitter < 0:
        raise ConfigurationError(
            f"backoff_factor={backoff.factor} must be 1 or more and backoff_jitter="
            f"{backoff.jitter} 0 or more")
    if options.timeout_s is not None and options.timeout_s <= 0:
        raise ConfigurationError(f"timeout_s={options.timeout_s} must be more than 0, or None "
                                 "for no timeout")


class TaskHandle:
    """A reference to an enqueued task: read its state, wait for its result."""

    def __init__(self, app: App, task_id: str, queue: str, created: bool = True) -> None:
        self.app = app
        self.id = task_id
        self.queue = queue
        self.created = created
        """False when the id already existed and enqueue wrote nothing."""

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id!r}, queue={self.queue!r})"

    def record(self) -> TaskRecord:
        return self.app.get(self.id, queue=self.queue)

    def state(self) -> State:
        return self.record().state

    def result(self, timeout_s: float = 30.0, poll_max_s: float = 0.05) -> Any:
        """Wait up to ``timeout_s`` seconds for the task to finish and return its result.

        Polls the record with a backoff from 1 ms up to ``poll_max_s``. Raises TaskFailedError
        when the task ends dead or cancelled, ResultTimeoutError when time runs out first.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.001
        while True:
            rec = self.record()
            if rec.state is State.SUCCEEDED:
                return rec.result
            if rec.state in (State.DEAD, State.CANCELLED):
                raise TaskFailedError(self.id, rec.state.value, rec.error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeoutError(self.id, timeout_s, rec.state.value)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, poll_max_s)


class TaskFunction(Generic[P, R]):
    """A registered task; call it to run the body here, or ``enqueue`` it to run on a worker."""

    def __init__(self, app: App, definition: TaskDef) -> None:
        self.app = app
        self.definition = definition
        self.name = definition.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.definition.func(*args, **kwargs)
        return result

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Enqueue with the task's defaults. Use ``app.enqueue`` to override options."""
        return self.app.enqueue(self.name, args=args, kwargs=kwargs)


class App(AdminMixin):
    """Registry of tasks plus the Redis connection they run through.

    The connection opens on first use from ``redis_url``, else ``TASKQ_REDIS_URL``, else the
    embedded fakeredis server. ``configure`` may change the URL or settings before that.
    """

    def __init__(self, redis_url: str | None = None, *, settings: Settings = DEFAULT_SETTINGS,
                 clock: Clock | None = None, client: Any = None) -> None:
        settings.validate()
        self.settings = settings
        self.clock: Clock = clock or ServerClock()
        self._redis_url = redis_url
        self._client = client
        self._backend: Backend | None = None
        if client is not None:
            kind = "cluster" if isinstance(client, RedisCluster) else "redis"
            self._backend = Backend(kind, "<client given>")
        self._scripts: Scripts | None = None
        self._lock = threading.Lock()
        self._registry: dict[str, TaskDef] = {}
        self._known_queues: set[str] = set()
        self.keys = KeySpace(settings.key_prefix)

    # Connection.

    def configure(self, redis_url: str | None = None, settings: Settings | None = None,
                  clock: Clock | None = None) -> None:
        """Change the URL, settings or clock; only before the first Redis call."""
        if self._client is not None:
            raise ConfigurationError("configure() must be called before the app connects")
        if redis_url is not None:
            self._redis_url = redis_url
        if settings is not None:
            settings.validate()
            self.settings = settings
            self.keys = KeySpace(settings.key_prefix)
        if clock is not None:
            self.clock = clock

    def _connect(self) -> None:
        with self._lock:
            if self._client is None:
                self._client, self._backend = open_redis(self._redis_url)
            if self._scripts is None:
                self._scripts = Scripts(self._client, self.settings.events_max_len)

    @property
    def client(self) -> Any:
        if self._client is None or self._scripts is None:
            self._connect()
        return self._client

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self._connect()
        assert self._scripts is not None
        return self._scripts

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._connect()
        assert self._backend is not None
        return self._backend

    @property
    def cluster(self) -> bool:
        """True on Redis Cluster, where calls that span queues go one queue at a time."""
        return self.backend.kind == "cluster"

    def now(self) -> str:
        """The ``now_us`` argument for scripts (empty: the server's clock)."""
        return self.clock.script_now()

    # Registry.

    def task(self, name: str | None = None, *, queue: str = DEFAULT_QUEUE,
             priority: int = DEFAULT_PRIORITY, max_retries: int | None = None,
             backoff_min_s: float | None = None, backoff_max_s: float | None = None,
             backoff_factor: float | None = None, backoff_jitter: float | None = None,
             timeout_s: float | None = None, result_ttl_s: float | None = None,
             ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]:
        """Register a function as a task under ``name`` (default: module.qualname).

        ``None`` options take the app's settings. An explicit ``backoff_min_s=0`` means retry
        at once. ``result_ttl_s`` is how long the record and result stay after success; 0
        deletes them at once, a negative value keeps them until deleted by hand.
        """
        if isinstance(max_retries, bool) or (max_retries is not None
                                             and not isinstance(max_retries, int)):
            raise ConfigurationError(
                f"max_retries={max_retries!r} must be an integer, 0 or more")
        s = self.settings
        options = TaskOptions(
            queue=codec.validate_name("queue", queue, s.max_queue_name_chars),
            priority=codec.validate_priority(priority),
            max_retries=s.default_max_retries if max_retries is None else int(max_retries),
            backoff=Backoff(
                min_s=s.default_backoff_min_s if backoff_min_s is None else float(backoff_min_s),
                max_s=s.default_backoff_max_s if backoff_max_s is None else float(backoff_max_s),
                factor=s.default_backoff_factor if backoff_factor is None else backoff_factor,
                jitter=s.default_backoff_jitter if backoff_jitter is None else backoff_jitter,
            ),
            timeout_s=timeout_s,
            result_ttl_s=s.default_result_ttl_s if result_ttl_s is None else result_ttl_s,
        )
        _check_options(options, max_retries)
        if options.backoff.min_s < 0 or options.backoff.max_s < options.backoff.min_s:
            raise ConfigurationError(
                f"backoff_min_s={options.backoff.min_s} and backoff_max_s="
                f"{options.backoff.max_s} must satisfy 0 <= min <= max")

        def register(func: Callable[P, R]) -> TaskFunction[P, R]:
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            if task_name in self._registry and self._registry[task_name].func is not func:
                raise ConfigurationError(f"task name {task_name!r} is already registered")
            definition = TaskDef(task_name, func, options)
            self._registry[task_name] = definition
            return TaskFunction(self, definition)

        return register

    def registered(self) -> Mapping[str, TaskDef]:
        return dict(self._registry)

    def lookup(self, name: str) -> TaskDef:
        """Return the definition of a registered task; raises UnknownTaskError."""
        try:
            return self._registry[name]
        except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
            known = ", ".join(sorted(self._registry)) or "none"
            raise UnknownTaskError(
                f"task {codec._short(name)} is not registered with this app (registered: "
                f"{known}); import the module that defines it, or pass --app to the CLI"
            ) from None

    # Enqueue.

    def enqueue(self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                *, queue: str | None = None, priority: int | None = None,
                delay_s: float | None = None, eta: Any = None, task_id: str | None = None
                ) -> TaskHandle:
        """Enqueue one task in one Lua call and return its handle.

        ``delay_s`` (seconds from now on the Redis server's clock) or ``eta`` (a datetime; see
        ``codec.eta_to_ms`` for naive values) schedules it. A caller-supplied ``task_id`` makes
        the call idempotent: while a record with that id exists in the queue, enqueue writes
        nothing and returns a handle with ``created=False``. Raises InvalidTaskError (naming the
        value) before anything is written.
        """
        call = Call(name, args, kwargs or {}, queue, priority, delay_s, eta, task_id)
        return self.enqueue_many([call])[0]

    def enqueue_many(self, calls: Iterable[Call]) -> list[TaskHandle]:
        """Enqueue many tasks with one Lua call per queue and per ``max_tasks_per_call`` tasks.

        Every call is validated and encoded first; one invalid call raises before any is written.
        """
        prepared = [self._prepare(call) for call in calls]
        by_queue: dict[str, list[int]] = {}
        for index, (queue, _item) in enumerate(prepared):
            by_queue.setdefault(queue, []).append(index)

        created = [False] * len(prepared)
        chunk = self.settings.max_tasks_per_call
        for queue, indexes in by_queue.items():
            self._register_queue(queue)
            keys = self.keys.queue(queue)
            for start in range(0, len(indexes), chunk):
                part = indexes[start:start + chunk]
                _, flags = self.scripts.enqueue(self.now(), keys, [prepared[i][1] for i in part])
                for i, flag in zip(part, flags):
                    created[i] = bool(flag)
        return [TaskHandle(self, item[0], queue, created[i])
                for i, (queue, item) in enumerate(prepared)]

    def _prepare(self, call: Call) -> tuple[str, tuple[str, str, str, str, str]]:
        s = self.settings
        definition = self.lookup(call.name)
        options = definition.options
        queue = options.queue if call.queue is None else codec.validate_name(
            "queue", call.queue, s.max_queue_name_chars)
        priority = options.priority if call.priority is None else codec.validate_priority(
            call.priority)
        task_id = uuid.uuid4().hex if call.task_id is None else codec.validate_name(
            "task_id", call.task_id, s.max_id_chars)
        delay_ms = ""
        eta_ms = ""
        if call.eta is not None and call.delay_s is not None:
            raise InvalidTaskError("pass either delay_s or eta, not both")
        if call.delay_s is not None:
            delay_ms = str(round(codec.validate_delay(call.delay_s) * 1000))
        if call.eta is not None:
            eta_ms = str(codec.eta_to_ms(call.eta))
        args_json = codec.encode_arguments(call.args, call.kwargs, s)
        record = {"id": task_id, "name": definition.name,
                  **replace(options, queue=queue, priority=priority).to_record_fields()}
        return queue, (task_id, json.dumps(record), args_json, delay_ms, eta_ms)

    def _register_queue(self, queue: str) -> None:
        # One SADD per queue and process: the registry lets tools list queues without SCAN.
        # TODO: if Redis loses its data, a producer that already registered the queue does not
        # register it again, so tools miss the queue until another process enqueues to it.
        if queue not in self._known_queues:
            self.client.sadd(self.keys.global_keys.queues, queue)
            self._known_queues.add(queue)

    # Reading tasks.

    def queues(self) -> list[str]:
        """Every queue that has had a task enqueued, sorted."""
        members = self.client.smembers(self.keys.global_keys.queues)
        return sorted(m.decode("utf-8", "replace") if isinstance(m, bytes) else m
                      for m in members)

    def find_queue(self, task_id: str) -> str:
        """Return the queue holding a record for ``task_id``; raises TaskNotFoundError."""
        queues = self.queues()
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.hexists(self.keys.queue(queue).tasks, task_id)
        found = [q for q, exists in zip(queues, pipe.execute()) if exists]
        if not found:
            raise TaskNotFoundError(task_id)
        if len(found) > 1:
            raise TaskNotFoundError(task_id, f"task id {task_id!r} exists in several queues "
                                    f"({', '.join(found)}): name the queue")
        return found[0]

    def get(self, task_id: str, queue: str | None = None) -> TaskRecord:
        """Read a task's record, arguments and result; raises TaskNotFoundError."""
        queue = queue or self.find_queue(task_id)
        keys = self.keys.queue(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(keys.tasks, task_id)
        pipe.hget(keys.args, task_id)
        pipe.hget(keys.results, task_id)
        raw, args_raw, result_raw = pipe.execute()
        if raw is None:
            raise TaskNotFoundError(task_id)
        try:
            rec = TaskRecord.from_json(raw.decode("utf-8", "replace"))
        except ValueError:
            raise TaskNotFoundError(task_id, f"task {task_id!r} has a corrupt record") from None
        if args_raw is not None:
            try:
                rec.args, rec.kwargs = codec.decode_arguments(args_raw.decode("utf-8", "replace"))
            except ValueError:
                rec.args, rec.kwargs = None, None
        if result_raw is not None:
            rec.result = json.loads(result_raw)
        return rec

    def handle(self, task_id: str, queue: str | None = None) -> TaskHandle:
        return TaskHandle(self, task_id, queue or self.find_queue(task_id))
