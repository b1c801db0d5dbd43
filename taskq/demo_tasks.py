"""The task module of ``taskq demo``: one registered task that analyzes one source file.

Worker processes started elsewhere share the demo's work with::

    taskq worker --app taskq.demo_tasks --redis-url redis://host:6379/3

They must see the same file system as the demo (the task receives a path, not the file's
content), so run them on the same machine or on one with the same Python installation.
"""

from __future__ import annotations

import hashlib
import io
import tokenize
import zlib
from dataclasses import replace
from typing import Any

import taskq

QUEUE = "demo"
TASK_NAME = "demo.analyze_file"

# Failing inputs retry twice (three attempts) after 0.2 s, then 0.4 s plus jitter, and end dead
# within about a second, so the demo shows retries without waiting on the default backoff.
MAX_RETRIES = 2
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 1.0
TIMEOUT_S = 30.0
# Results stay for an hour, so the summary, `taskq stats` and the dashboard can read them.
# The next demo run on the same queue deletes them anyway.
RESULT_TTL_S = 3600.0

# The engine defaults, except a promoter that wakes at least every 0.2 s, so delayed tasks and
# retries become ready close to their due time.
DEMO_SETTINGS = replace(taskq.Settings(), promoter_max_sleep_s=0.2)


def analyze_file(path: str) -> dict[str, Any]:
    """Return the SHA-256, size, line and word counts and zlib ratio of a Python source file.

    The text is decoded the way Python reads source (PEP 263): the encoding declared in a coding
    comment or a BOM, else UTF-8. Raises OSError for a path that cannot be read (missing, a
    directory), SyntaxError for an invalid encoding declaration and UnicodeDecodeError for bytes
    that are invalid in the file's encoding. ``compression_ratio`` is compressed size divided by
    original size (zlib level 6), or None for an empty file.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    ratio = len(zlib.compress(data, 6)) / len(data) if data else None
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "lines": len(text.splitlines()),
        "words": len(text.split()),
        "compression_ratio": ratio,
        "encoding": encoding,
    }


def create_app(redis_url: str | None = None) -> taskq.App:
    """Build an App with the demo's settings and its one task registered.

    The demo builds a fresh App per run because an App's URL is fixed once it connects. Worker
    processes use the module-level ``app``, which reads TASKQ_REDIS_URL or ``--redis-url``.
    """
    demo_app = taskq.App(redis_url, settings=DEMO_SETTINGS)
    demo_app.task(name=TASK_NAME, queue=QUEUE, max_retries=MAX_RETRIES,
                  backoff_min_s=BACKOFF_MIN_S, backoff_max_s=BACKOFF_MAX_S,
                  timeout_s=TIMEOUT_S, result_ttl_s=RESULT_TTL_S)(analyze_file)
    return demo_app


app = create_app()
