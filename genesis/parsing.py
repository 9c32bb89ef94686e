"""A shared, cached Python parser.

The same program text is parsed more than once in a process: a mutator parses the child it
produced, then the database analyses that child's complexity when it is added, and parents
come back again and again. Parsed trees are cached by source text; callers must not modify
them. Compile-time warnings of analysed code (invalid escapes, ``1if``) are noise and are
silenced for this parser's pseudo file name only.
"""

from __future__ import annotations

import ast
import re
import warnings
from functools import lru_cache

__all__ = ["PARSE_FILENAME", "parse_python"]

PARSE_FILENAME = "<genesis-parsed-code>"
warnings.filterwarnings("ignore", module=re.escape(PARSE_FILENAME))


@lru_cache(maxsize=256)
def parse_python(source: str) -> ast.Module:
    """Parse Python source (cached; raises SyntaxError/ValueError like ``ast.parse``)."""
    return ast.parse(source, filename=PARSE_FILENAME)
