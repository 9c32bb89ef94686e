"""Deterministic local code embedding: a signed, hashed bag of Python tokens and bigrams."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import re
import tokenize
from collections import Counter
from functools import lru_cache

DEFAULT_DIM = 1536
_SKIP = {
    tokenize.ENCODING,
    tokenize.ENDMARKER,
    tokenize.NEWLINE,
    tokenize.NL,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.COMMENT,
}
_FALLBACK_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\S")
_EMPTY = "<empty>"


def code_tokens(code: str) -> list[str]:
    """Python tokens of ``code`` without layout and comments; a regex split if it won't lex."""
    try:
        return [
            tok.string
            for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type not in _SKIP
        ]
    except (tokenize.TokenError, SyntaxError):
        return _FALLBACK_TOKEN.findall(code)


@lru_cache(maxsize=65536)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Index and sign of a feature from blake2b (stable across runs, unlike hash())."""
    digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dim, 1.0 if value & 1 else -1.0


def embed_code(code: str, dim: int = DEFAULT_DIM) -> list[float]:
    """L2-normalised ``dim``-dimensional embedding of a program's tokens and token bigrams.

    Equal inputs give equal vectors in every process; similar programs share most
    features and so have a high cosine similarity.
    """
    if dim < 1:
        raise ValueError("dim must be positive")
    tokens = code_tokens(code) or [_EMPTY]
    features = Counter(f"1:{t}" for t in tokens)
    features.update(f"2:{a}\x00{b}" for a, b in itertools.pairwise(tokens))
    vector = [0.0] * dim
    for feature, count in features.items():
        index, sign = _bucket(feature, dim)
        vector[index] += sign * (1.0 + math.log(count))
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0:  # every feature cancelled out: fall back to the sentinel feature
        index, sign = _bucket(_EMPTY, dim)
        vector[index] = sign
        return vector
    return [v / norm for v in vector]
