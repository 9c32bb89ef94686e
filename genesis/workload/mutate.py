"""Mutation step of the evolution loop: the :class:`Mutator` protocol and a built-in one.

:class:`ProgrammaticMutator` edits real Python source without an LLM. Edits are made on
the text at ``ast`` positions, so comments and formatting survive and diffs stay small:

* ``perturb`` (patch type ``"diff"``): scale 1-3 numeric literals by Gaussian noise;
* ``swap`` (``"diff"``): replace or insert one helper function with a library strategy;
* ``cross`` (``"cross"``): copy a function that differs from an inspiration program;
* ``rewrite`` (``"full"``): swap every library slot at once.
"""

from __future__ import annotations

import ast
import difflib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol, runtime_checkable

from genesis.workload._codeedit import Module, transplant
from genesis.workload.circles import ENTRY_POINT
from genesis.workload.strategies import CIRCLE_STRATEGIES, Strategy

PatchType = Literal["diff", "full", "cross"]

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "perturb": 0.55,
    "swap": 0.25,
    "cross": 0.15,
    "rewrite": 0.05,
}
_MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Proposal:
    """A proposed child program and how it was derived from its parent."""

    code: str
    diff: str
    patch_type: PatchType
    patch_name: str
    description: str


@runtime_checkable
class Mutator(Protocol):
    """Anything that turns a parent program (plus inspirations) into a child proposal."""

    async def propose(
        self, parent_code: str, inspirations: Sequence[str], rng: random.Random
    ) -> Proposal:
        """Propose a child of ``parent_code``; all randomness must come from ``rng``."""
        ...


@dataclass(frozen=True)
class _Edit:
    """Result of one operator: new source plus labels (before the diff is computed)."""

    code: str
    patch_type: PatchType
    patch_name: str
    description: str


def unified_diff(parent: str, child: str) -> str:
    """Unified diff between two programs."""
    return "".join(
        difflib.unified_diff(
            parent.splitlines(keepends=True),
            child.splitlines(keepends=True),
            fromfile="a/program.py",
            tofile="b/program.py",
        )
    )


class ProgrammaticMutator:
    """LLM-free mutator: literal perturbation, strategy swaps, crossover and rewrites."""

    def __init__(
        self,
        strategies: Sequence[Strategy] = CIRCLE_STRATEGIES,
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        anchor: str = ENTRY_POINT,
    ) -> None:
        """Configure the strategy library, operator weights and the entry-point name."""
        self._operators: dict[str, Callable[[Module, Sequence[str], random.Random], _Edit]]
        self._operators = {
            "perturb": self._perturb,
            "swap": self._swap,
            "cross": self._cross,
            "rewrite": self._rewrite,
        }
        unknown = set(weights) - set(self._operators)
        if unknown or not any(w > 0 for w in weights.values()):
            raise ValueError(f"weights must name operators {sorted(self._operators)}")
        self._weights = {k: float(w) for k, w in weights.items() if w > 0}
        self._strategies = [(s, Module.parse(s.source)) for s in strategies]
        self._strategy_text = {
            (s.slot, s.name): _function_texts(m)[s.slot] for s, m in self._strategies
        }
        self._anchor = anchor

    async def propose(
        self, parent_code: str, inspirations: Sequence[str], rng: random.Random
    ) -> Proposal:
        """Propose a child program (see :meth:`mutate`)."""
        return self.mutate(parent_code, inspirations, rng)

    def mutate(self, parent_code: str, inspirations: Sequence[str], rng: random.Random) -> Proposal:
        """Synchronously propose a syntactically valid child that differs from the parent.

        Raises ``ValueError`` when the parent is not valid Python or no operator applies.
        """
        try:
            parent = Module.parse(parent_code)
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"parent program does not parse: {exc}") from exc
        names = list(self._weights)
        weights = [self._weights[n] for n in names]
        for _ in range(_MAX_ATTEMPTS):
            op = rng.choices(names, weights)[0]
            try:
                edit = self._operators[op](parent, inspirations, rng)
            except _NotApplicable:
                continue
            if edit.code != parent_code:
                Module.parse(edit.code)  # invariant: valid Python (and cached for its children)
                diff = unified_diff(parent_code, edit.code)
                return Proposal(edit.code, diff, edit.patch_type, edit.patch_name, edit.description)
        raise ValueError("no mutation operator could change this program")

    def _perturb(self, parent: Module, _: Sequence[str], rng: random.Random) -> _Edit:
        """Scale a few numeric literals by Gaussian noise."""
        literals = _numeric_literals(parent.tree)
        floats = [n for n in literals if isinstance(n.value, float)]
        pool = floats if floats and rng.random() < 0.8 else literals
        if not pool:
            raise _NotApplicable
        count = min(len(pool), rng.choices([1, 2, 3], [0.6, 0.3, 0.1])[0])
        chosen = sorted(rng.sample(pool, count), key=parent.node_span, reverse=True)
        data, notes = parent.data, []
        for node in chosen:  # right to left, so earlier byte offsets stay valid
            new = _jitter(node.value, rng)
            if new is None:
                continue
            start, end = parent.node_span(node)
            new_text = repr(new) if new >= 0 else f"({new!r})"
            notes.append(f"line {node.lineno}: {data[start:end].decode()} -> {new_text}")
            data = data[:start] + new_text.encode() + data[end:]
        if not notes:
            raise _NotApplicable
        notes.reverse()
        return _Edit(
            data.decode(),
            "diff",
            "perturb_constants",
            f"Perturbed {len(notes)} numeric constant(s): " + "; ".join(notes) + ".",
        )

    def _swap(self, parent: Module, _: Sequence[str], rng: random.Random) -> _Edit:
        """Replace (or insert) one helper with a different strategy from the library."""
        current = _function_texts(parent)
        options = [
            (s, m)
            for s, m in self._strategies
            if self._strategy_text[(s.slot, s.name)] != current.get(s.slot)
        ]
        if not options:
            raise _NotApplicable
        strategy, module = rng.choice(options)
        verb = "Replaced" if strategy.slot in current else "Inserted"
        code = transplant(parent.source, module, strategy.slot, self._anchor)
        return _Edit(
            code,
            "diff",
            f"swap_{strategy.slot}_{strategy.name}",
            f"{verb} {strategy.slot}() with the '{strategy.name}' strategy.",
        )

    def _cross(self, parent: Module, inspirations: Sequence[str], rng: random.Random) -> _Edit:
        """Copy one function that differs from an inspiration program into the parent."""
        current = _function_texts(parent)
        options: list[tuple[int, Module, str]] = []
        for index, code in enumerate(inspirations):
            try:
                donor = Module.parse(code)
            except (SyntaxError, ValueError):
                continue
            options.extend(
                (index, donor, name)
                for name, text in _function_texts(donor).items()
                if text != current.get(name)
            )
        if not options:
            raise _NotApplicable
        index, donor, name = rng.choice(options)
        code = transplant(parent.source, donor, name, self._anchor)
        return _Edit(
            code, "cross", f"cross_{name}", f"Took {name}() from inspiration program #{index}."
        )

    def _rewrite(self, parent: Module, _: Sequence[str], rng: random.Random) -> _Edit:
        """Pick a library strategy for every slot and apply them all."""
        by_slot: dict[str, list[tuple[Strategy, Module]]] = {}
        for strategy, module in self._strategies:
            by_slot.setdefault(strategy.slot, []).append((strategy, module))
        code, picked = parent.source, []
        for slot, options in by_slot.items():
            strategy, module = rng.choice(options)
            code = transplant(code, module, slot, self._anchor)
            picked.append(f"{slot}={strategy.name}")
        return _Edit(
            code,
            "full",
            "rewrite_" + "_".join(p.split("=")[1] for p in picked),
            "Rewrote the pipeline with strategies " + ", ".join(picked) + ".",
        )


def _function_texts(module: Module) -> dict[str, str]:
    """Source text of each top-level function (cheaper to compare than AST dumps)."""
    return {name: module.stmt_text(node) for name, node in module.functions().items()}


class _NotApplicable(Exception):
    """Raised by an operator that cannot change the given program."""


@lru_cache(maxsize=256)
def _numeric_literals(tree: ast.Module) -> tuple[ast.Constant, ...]:
    """Int and float literals outside f-strings (whose positions are unreliable).

    Cached per tree: parsed modules are cached and never modified, and parents recur.
    """
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.JoinedStr):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return tuple(found)


def _jitter(value: float, rng: random.Random) -> float | None:
    """A nearby different value of the same type, or None if none is representable."""
    if isinstance(value, int):
        if abs(value) <= 10:
            return value + rng.choice([-2, -1, 1, 1, 2])
        new = round(value * (1.0 + rng.gauss(0.0, 0.2)))
        return new if new != value else value + 1
    sigma = rng.choice([0.01, 0.05, 0.2])
    new = value * (1.0 + rng.gauss(0.0, sigma)) if value != 0 else rng.gauss(0.0, 0.05)
    new = float(f"{new:.4g}")
    return new if math.isfinite(new) and new != value else None
