"""Format-preserving edits of Python source, driven by ``ast`` node positions."""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from functools import lru_cache

from genesis.parsing import parse_python

_BUILTINS = frozenset(dir(builtins))
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Module:
    """Parsed source that remembers its UTF-8 bytes, since ``ast`` columns count bytes."""

    source: str
    tree: ast.Module
    data: bytes
    line_starts: tuple[int, ...]

    @classmethod
    def parse(cls, source: str) -> Module:
        """Parse ``source``; raises ``SyntaxError`` (or ``ValueError``) when it is not Python.

        Parses are cached: the same parents and inspirations come back again and again, and
        a module is never modified (edits produce new source text).
        """
        return _parse(source)

    def offset(self, lineno: int, col: int) -> int:
        """Byte offset of a 1-based line and a 0-based byte column."""
        return self.line_starts[lineno - 1] + col

    def node_span(self, node: ast.expr) -> tuple[int, int]:
        """Byte span of an expression node."""
        assert node.end_lineno is not None and node.end_col_offset is not None
        return (
            self.offset(node.lineno, node.col_offset),
            self.offset(node.end_lineno, node.end_col_offset),
        )

    def stmt_lines(self, node: ast.stmt) -> tuple[int, int]:
        """Byte span of the whole lines of a statement, decorators included."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        assert node.end_lineno is not None
        return self.line_starts[first - 1], self.line_starts[node.end_lineno]

    def stmt_text(self, node: ast.stmt) -> str:
        """Source text of a top-level statement's lines, ending with a newline."""
        start, end = self.stmt_lines(node)
        text = self.data[start:end].decode("utf-8")
        return text if text.endswith("\n") else text + "\n"

    def splice(self, start: int, end: int, text: str) -> str:
        """Source with bytes ``[start, end)`` replaced by ``text``."""
        return (self.data[:start] + text.encode("utf-8") + self.data[end:]).decode("utf-8")

    def insert_lines(self, at: int, text: str) -> str:
        """Insert whole lines at a line boundary, adding a newline if the file lacks one."""
        if at > 0 and not self.data[:at].endswith(b"\n"):
            text = "\n" + text
        return self.splice(at, at, text)

    def functions(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        """Top-level functions by name (the last definition wins, as at run time)."""
        return {
            n.name: n
            for n in self.tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        }

    def bindings(self) -> dict[str, ast.stmt]:
        """Top-level statements by each name they bind."""
        bound: dict[str, ast.stmt] = {}
        for node in self.tree.body:
            for name in _bound_names(node):
                bound[name] = node
        return bound


def _bound_names(node: ast.stmt) -> list[str]:
    """Names bound at module level by one top-level statement."""
    if isinstance(node, _DEFS):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def free_names(node: ast.AST) -> set[str]:
    """Names a statement reads but does not bind itself (an over-approximation is fine)."""
    loaded: set[str] = set()
    stored: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (loaded if isinstance(sub.ctx, ast.Load) else stored).add(sub.id)
        elif isinstance(sub, ast.arg):
            stored.add(sub.arg)
    return loaded - stored - _BUILTINS


def transplant(recipient: str, donor: Module, name: str, anchor: str) -> str:
    """Copy top-level function ``name`` from ``donor`` into ``recipient``.

    An existing function of that name is replaced in place; otherwise the function is
    inserted before ``anchor`` (or appended). Top-level definitions the function needs
    and the recipient lacks are copied from the donor too, transitively.
    """
    func = donor.functions()[name]
    target = Module.parse(recipient)
    have = set(target.bindings())
    donor_bindings = donor.bindings()
    needed: list[ast.stmt] = []
    pending = sorted(free_names(func))
    seen = {name}
    while pending:
        dep = pending.pop(0)
        if dep in seen or dep in have or dep not in donor_bindings:
            continue
        seen.add(dep)
        stmt = donor_bindings[dep]
        if stmt not in needed:
            needed.append(stmt)
            pending.extend(sorted(free_names(stmt)))
    existing = target.functions().get(name)
    if existing is not None:
        start, end = target.stmt_lines(existing)
        source = target.splice(start, end, donor.stmt_text(func))
    else:
        source = insert_definition(target, donor.stmt_text(func), anchor)
    for stmt in sorted(needed, key=lambda s: s.lineno):
        text = donor.stmt_text(stmt)
        if isinstance(stmt, _DEFS):
            source = insert_definition(Module.parse(source), text, anchor)
        else:
            source = insert_header(Module.parse(source), text)
    return source


def insert_definition(module: Module, text: str, anchor: str) -> str:
    """Insert a function/class definition before the ``anchor`` function, or at the end."""
    anchor_node = module.functions().get(anchor)
    if anchor_node is None:
        return module.insert_lines(len(module.data), "\n\n" + text)
    start, _ = module.stmt_lines(anchor_node)
    return module.insert_lines(start, text + "\n\n")


def insert_header(module: Module, text: str) -> str:
    """Insert an import or constant after the module's leading non-definition statements."""
    last = None
    for node in module.tree.body:
        if isinstance(node, _DEFS):
            break
        last = node
    _, end = module.stmt_lines(last) if last is not None else (0, 0)
    return module.insert_lines(end, text)


@lru_cache(maxsize=256)
def _parse(source: str) -> Module:
    tree = parse_python(source)
    data = source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return Module(source, tree, data, tuple(starts))
