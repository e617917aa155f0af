"""Standard output and error for the length of a command: a reader that has gone (`| head`) ends
the writing quietly, never the command."""

from __future__ import annotations

import os


class DropWhenClosed:
    """A text stream that stops writing, quietly, once its reader has gone (`softmaxreg ... | head`):
    the first BrokenPipeError points the file descriptor at /dev/null (so the interpreter's last
    flush succeeds too) and later writes are dropped. Anything else goes to the stream."""

    def __init__(self, stream):
        self.stream, self.closed_pipe = stream, False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed_pipe = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):      # not a real file (e.g. captured in tests)
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)
