"""Bounded capture of a container's output: a 1 GB writer costs at most HEAD + TAIL bytes of memory.

The head keeps what `--version` prints first; the tail keeps the last lines a failure message quotes.
"""

from __future__ import annotations

from collections.abc import Iterator

HEAD_BYTES = 16 * 1024
TAIL_BYTES = 64 * 1024
_FRAME_HEADER = 8


class FrameStripper:
    """Docker's multiplexed attach stream (no TTY): each frame is an 8-byte header
    (stream id, 3 zero bytes, big-endian payload length) followed by the payload.
    Yields payloads in arrival order, so stdout and stderr stay interleaved as written."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._left = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._left:
                take = min(self._left, len(view) - pos)
                yield bytes(view[pos : pos + take])
                pos += take
                self._left -= take
                continue
            need = _FRAME_HEADER - len(self._header)
            chunk = view[pos : pos + need]
            self._header += chunk
            pos += len(chunk)
            if len(self._header) == _FRAME_HEADER:
                self._left = int.from_bytes(self._header[4:8], "big")
                self._header.clear()


class OutputCapture:
    """The first `head` and the last `tail` bytes of a stream, and how many bytes it had in all."""

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self._head_cap = head
        self._tail_cap = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        if len(data) >= self._tail_cap:
            self._tail[:] = data[-self._tail_cap :]
        else:
            self._tail += data
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]

    @property
    def kept(self) -> int:
        """Bytes held in memory (never more than head + tail)."""
        return len(self._head) + len(self._tail)

    @property
    def truncated(self) -> bool:
        return self.total > self.kept

    def text(self) -> str:
        """Head and tail as text; a marker says how much was dropped in between."""
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        return f"{head}\n[… {self.total - self.kept} bytes of output not kept …]\n{tail}"
