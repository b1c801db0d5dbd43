"""Reading the task records that workers append, and the producers' side files."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TaskRecord:
    seq: int
    start_s: float
    end_s: float
    pid: int


class RecordTail:
    """Incremental reader of one worker session's record file.

    Workers append whole lines with single writes, but a read may still end
    in the middle of a line being written, so a partial last line is kept
    until its newline arrives.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.touch()
        self._offset = 0
        self._partial = b""
        self.by_seq: dict[int, TaskRecord] = {}
        self.duplicates = 0

    def poll(self) -> list[TaskRecord]:
        """Read the lines appended since the last call and return the first record of each new task.

        A task recorded twice (run again after a redelivery) keeps its first
        record and is counted in ``duplicates``.
        """
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        if not data:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        new: list[TaskRecord] = []
        for line in lines:
            seq_text, start_text, end_text, pid_text = line.split()
            record = TaskRecord(int(seq_text), float(start_text), float(end_text), int(pid_text))
            if record.seq in self.by_seq:
                self.duplicates += 1
                continue
            self.by_seq[record.seq] = record
            new.append(record)
        return new

    def in_range(self, first_seq: int, n: int) -> list[TaskRecord]:
        """Return the records seen so far for the ``n`` sequence numbers from ``first_seq``."""
        self.poll()
        return [self.by_seq[seq] for seq in range(first_seq, first_seq + n) if seq in self.by_seq]

    def wait_for(self, first_seq: int, n: int, timeout_s: float, poll_s: float = 0.005) -> int:
        """Wait until ``n`` records in the range have arrived or ``timeout_s`` passed.

        Returns the number that arrived. Only new lines are examined on each
        poll, so polling every few milliseconds stays cheap for large ranges.
        """
        deadline_s = time.monotonic() + timeout_s
        last_seq = first_seq + n
        done = sum(1 for seq in range(first_seq, last_seq) if seq in self.by_seq)
        while done < n:
            done += sum(1 for record in self.poll() if first_seq <= record.seq < last_seq)
            if done >= n or time.monotonic() > deadline_s:
                break
            time.sleep(poll_s)
        return done


def read_pairs(path: Path, column: int = 1) -> dict[int, float]:
    """Read one value column of a producer's ``seq value_s ...`` file (ready times or due times)."""
    result: dict[int, float] = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            fields = line.split()
            result[int(fields[0])] = float(fields[column])
    return result
