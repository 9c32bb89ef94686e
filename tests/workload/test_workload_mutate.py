"""Programmatic mutation of real Python source."""

from __future__ import annotations

import ast
import random

import pytest

from genesis.workload import (
    CIRCLE_STRATEGIES,
    INITIAL_PROGRAM,
    Evaluator,
    Mutator,
    ProgrammaticMutator,
)

DONOR = '''
import numpy as np
import math

N_CIRCLES = 26
SPACING = 0.2


def _lattice(n):
    """Helper that only the donor has."""
    side = math.ceil(math.sqrt(n))
    ticks = (np.arange(side) + 0.5) * SPACING
    return np.array([(x, y) for y in ticks for x in ticks][:n])


def place_centers():
    return _lattice(N_CIRCLES)
'''


class _ZeroNumbers(ast.NodeTransformer):
    """Replace every (possibly negated) number literal by 0."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Constant(0) if type(node.value) in (int, float) else node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return self.visit_Constant(node.operand)
        return self.generic_visit(node)


def structure(code: str) -> str:
    """AST dump with numbers zeroed, to compare programs up to their constants."""
    return ast.dump(_ZeroNumbers().visit(ast.parse(code)))


def test_programmatic_mutator_satisfies_the_protocol() -> None:
    assert isinstance(ProgrammaticMutator(), Mutator)


def test_children_always_parse_and_differ_from_their_parent() -> None:
    mutator = ProgrammaticMutator()
    rng = random.Random(7)
    pool = [INITIAL_PROGRAM, DONOR]
    kinds = set()
    for _ in range(400):
        parent = rng.choice(pool)
        proposal = mutator.mutate(parent, rng.sample(pool, min(3, len(pool))), rng)
        compile(proposal.code, "<child>", "exec")
        assert proposal.code != parent
        assert proposal.diff.startswith("--- a/program.py\n+++ b/program.py\n")
        assert proposal.patch_type in ("diff", "full", "cross")
        assert proposal.patch_name and proposal.description
        kinds.add(proposal.patch_type)
        pool = [*pool[-30:], proposal.code]
    assert kinds == {"diff", "full", "cross"}


async def test_mutation_is_deterministic_per_seed() -> None:
    mutator = ProgrammaticMutator()

    async def chain(seed: int) -> list[str]:
        rng, code, codes = random.Random(seed), INITIAL_PROGRAM, []
        for _ in range(30):
            code = (await mutator.propose(code, [DONOR], rng)).code
            codes.append(code)
        return codes

    assert await chain(1) == await chain(1)
    assert await chain(1) != await chain(2)


def test_perturbation_changes_only_numbers_and_keeps_comments() -> None:
    mutator = ProgrammaticMutator(weights={"perturb": 1.0})
    source = INITIAL_PROGRAM.replace("inner_count = 8", "inner_count = 8  # tunable")
    for seed in range(50):
        proposal = mutator.mutate(source, [], random.Random(seed))
        assert structure(proposal.code) == structure(source)
        assert "# tunable" in proposal.code
        assert proposal.patch_name == "perturb_constants"
        changed = [line for line in proposal.diff.splitlines() if line.startswith("+ ")]
        assert 1 <= len(changed) <= 3


def test_swap_replaces_a_function_with_a_library_strategy() -> None:
    mutator = ProgrammaticMutator(weights={"swap": 1.0})
    proposal = mutator.mutate(INITIAL_PROGRAM, [], random.Random(0))
    slot, name = next(
        (s.slot, s.name) for s in CIRCLE_STRATEGIES if proposal.patch_name.endswith(s.name)
    )
    assert proposal.patch_name == f"swap_{slot}_{name}"
    functions = [n.name for n in ast.parse(proposal.code).body if isinstance(n, ast.FunctionDef)]
    assert functions.count(slot) == 1
    assert functions[-1] == "construct_packing"


def test_crossover_copies_a_function_and_its_dependencies() -> None:
    mutator = ProgrammaticMutator(weights={"cross": 1.0})
    for seed in range(20):
        proposal = mutator.mutate(INITIAL_PROGRAM, [DONOR], random.Random(seed))
        if proposal.patch_name == "cross_place_centers":
            break
    else:
        pytest.fail("crossover never picked place_centers")
    code = proposal.code
    assert proposal.patch_type == "cross"
    assert "return _lattice(N_CIRCLES)" in code
    assert "def _lattice(n):" in code and "SPACING = 0.2" in code and "import math" in code
    namespace: dict[str, object] = {}
    exec(code, namespace)
    centers, _ = namespace["construct_packing"]()  # type: ignore[operator]
    assert centers.shape == (26, 2)


def test_unparseable_parent_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        ProgrammaticMutator().mutate("def f(:", [], random.Random(0))


def test_unknown_operator_weight_is_rejected() -> None:
    with pytest.raises(ValueError):
        ProgrammaticMutator(weights={"llm": 1.0})


async def test_hill_climb_improves_on_the_initial_program() -> None:
    mutator = ProgrammaticMutator()
    rng = random.Random(0)
    async with Evaluator(workers=2, timeout=10.0) as ev:
        initial = await ev.evaluate(INITIAL_PROGRAM)
        best_code, best_score = INITIAL_PROGRAM, initial.combined_score
        elite = [INITIAL_PROGRAM]
        for _ in range(150):
            proposal = await mutator.propose(best_code, elite[-3:], rng)
            result = await ev.evaluate(proposal.code)
            if result.correct and result.combined_score > best_score:
                best_code, best_score = proposal.code, result.combined_score
                elite.append(best_code)
    assert initial.correct
    assert best_score > initial.combined_score + 0.5
