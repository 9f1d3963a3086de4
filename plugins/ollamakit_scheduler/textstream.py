"""From token bytes to text a client may see: whole UTF-8 characters only, and never any part
of a stop sequence.

A token can end in the middle of a character (byte-level BPE splits emoji and CJK), and a stop
sequence can span several tokens, so both are held back until they resolve.
"""

from __future__ import annotations

import codecs


class TextStream:
    def __init__(self, stops=()):
        self.stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""  # decoded text that may be the start of a stop sequence
        self.stopped = False

    def push(self, piece: bytes) -> str:
        """Add a token's bytes; return the text now safe to emit. After a stop sequence is
        found, ``stopped`` is true and the text before it is the last thing returned."""
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(piece)
        cut = self._earliest_stop(text)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return text[:cut]
        hold = self._partial_stop_length(text)
        self._held = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """The generation ended without a stop sequence: release what was held."""
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        cut = self._earliest_stop(text)
        if cut is not None:
            self.stopped = True
            return text[:cut]
        return text

    def _earliest_stop(self, text: str) -> int | None:
        found = [i for i in (text.find(stop) for stop in self.stops) if i >= 0]
        return min(found) if found else None

    def _partial_stop_length(self, text: str) -> int:
        """The longest tail of ``text`` that is a proper prefix of some stop sequence."""
        longest = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest
