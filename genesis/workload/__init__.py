"""LLM-free evolution workload: circle packing, programmatic mutation, evaluation, embedding.

* :data:`INITIAL_PROGRAM` and :func:`score_packing` define the problem (26 circles in
  the unit square, maximise the sum of radii);
* :class:`ProgrammaticMutator` implements the :class:`Mutator` protocol;
* :class:`Evaluator` runs programs in a pool of worker processes;
* :func:`embed_code` is a deterministic local code embedding.
"""

from genesis.workload.circles import (
    INITIAL_PROGRAM,
    N_CIRCLES,
    PackingScore,
    score_packing,
    score_result,
)
from genesis.workload.embed import embed_code
from genesis.workload.evaluate import EvalResult, Evaluator
from genesis.workload.mutate import Mutator, ProgrammaticMutator, Proposal
from genesis.workload.strategies import CIRCLE_STRATEGIES, Strategy

__all__ = [
    "CIRCLE_STRATEGIES",
    "INITIAL_PROGRAM",
    "N_CIRCLES",
    "EvalResult",
    "Evaluator",
    "Mutator",
    "PackingScore",
    "ProgrammaticMutator",
    "Proposal",
    "Strategy",
    "embed_code",
    "score_packing",
    "score_result",
]
