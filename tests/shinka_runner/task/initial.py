"""Harness task: choose a point (alpha, beta, gamma); the closer to a hidden target, the better."""


# EVOLVE-BLOCK-START
def propose():
    """Return the candidate point the evaluator scores."""
    alpha = 0.5
    beta = -1.5
    gamma = 2.0
    return alpha, beta, gamma


# EVOLVE-BLOCK-END


def run_experiment():
    """Entry point the evaluator calls."""
    return propose()
