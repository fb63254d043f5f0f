"""CLIP's byte-level BPE tokenizer, for the open_clip-style text tower, reading a user-supplied vocab.

open_clip ships its merges list as ``bpe_simple_vocab_16e6.txt.gz`` (inside the ``open_clip_torch``
package, or OpenAI's CLIP repository); it cannot be downloaded here, so :class:`ClipTokenizer` takes
the path of such a file (gzip or plain text: a header line, then one merge ``"a b"`` per line). The
behaviour follows open_clip's ``SimpleTokenizer`` with its default ``clean="lower"``:

* text clean-up: ``ftfy.fix_text`` (the ``clip`` extra installs ftfy; without it only its Unicode NFC
  normalisation is applied, which differs from open_clip only for mojibake, ligatures, curly quotes
  and the like), HTML entities unescaped twice, whitespace runs collapsed, lower case;
* pre-tokenisation with the pattern ``'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^\\s\\p{L}\\p{N}]+``
  (case-insensitive; the special tokens match first);
* each piece's UTF-8 bytes mapped to printable characters (GPT-2's byte alphabet), ``</w>`` appended to
  its last character, then the ranked merges applied (lowest rank first, every occurrence left to
  right) until none applies;
* vocabulary: the 256 byte characters, the same with ``</w>``, one token per merge (at most
  49152 - 256 - 2 merges are read, as open_clip does), ``<start_of_text>``, ``<end_of_text>``: with
  open_clip's file that is 49408 tokens; EOT has the highest id, which the text tower's argmax pooling
  relies on;
* a batch becomes ``[SOT] + ids + [EOT]`` per row, cut to the context length (the last id then
  replaced by EOT) and padded with 0.

Blank lines in the merges file are skipped. ``tests/clip/test_open_clip_compat.py`` checks the ids
against open_clip's tokenizer on a small merges file made for the fixture.
"""
from __future__ import annotations

import gzip
import html
import os
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ClipInputError, MissingExtraError

SOT = "<start_of_text>"
EOT = "<end_of_text>"
#: open_clip reads at most this many merges from the vocab file.
MAX_MERGES = 49152 - 256 - 2


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """Byte -> printable character: printable Latin-1 bytes stand for themselves (in byte order), the
    other 68 bytes take the characters from U+0100 on, in byte order. Insertion order is the
    vocabulary's order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    mapping = {b: chr(b) for b in keep}
    shifted = (b for b in range(256) if b not in mapping)
    for offset, b in enumerate(shifted):
        mapping[b] = chr(256 + offset)
    return mapping


def _read_merges(path: Path) -> list[tuple[str, str]]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ClipInputError(f"cannot read the BPE vocab {path}: {exc}") from exc
    merges = []
    for number, line in enumerate(lines[1:MAX_MERGES + 1], start=2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ClipInputError(f"BPE vocab {path} line {number} is not a merge 'a b': {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


class ClipTokenizer:
    """CLIP BPE tokenizer over the merges file at ``vocab_path``. Calling it on a list of strings gives
    int64 ids ``[B, context_length]``."""

    def __init__(self, vocab_path: str | os.PathLike, context_length: int = 77):
        try:
            import regex
        except ImportError as exc:
            raise MissingExtraError("the CLIP tokenizer needs the 'regex' package: "
                                    "pip install 'splatcodec[clip]'") from exc
        self.vocab_path = Path(vocab_path)
        if not self.vocab_path.is_file():
            raise ClipInputError(f"BPE vocab file {self.vocab_path} does not exist")
        self.context_length = context_length
        self.merges = _read_merges(self.vocab_path)
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        alphabet = list(byte_alphabet().values())
        vocab = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in self.merges] + [SOT, EOT]
        self.encoder = {token: i for i, token in enumerate(vocab)}  # a repeated merge keeps its last id
        self.vocab_size = len(vocab)
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self._pattern = regex.compile(
            rf"{SOT}|{EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE)
        self._cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        try:
            import ftfy
            self._fix_text = ftfy.fix_text
        except ImportError:
            self._fix_text = None

    def clean(self, text: str) -> str:
        """open_clip's "lower" clean-up."""
        text = self._fix_text(text) if self._fix_text is not None else unicodedata.normalize("NFC", text)
        text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).lower()

    def _bpe(self, piece: str) -> list[str]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[piece] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of one string, without SOT / EOT."""
        alphabet = byte_alphabet()
        ids = []
        for piece in self._pattern.findall(self.clean(text)):
            chars = "".join(alphabet[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self._bpe(chars))
        return ids

    def __call__(self, texts: Sequence[str] | str, context_length: int | None = None) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        out = np.zeros((len(texts), length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text) + [self.eot_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.eot_id
            out[row, :len(ids)] = ids
        return out
