"""Evaluator of the harness task, in the form ShinkaEvolve's local jobs run.

ShinkaEvolve runs ``python evaluate.py --program_path MAIN --results_dir DIR`` and reads back
``DIR/metrics.json`` (``combined_score``, ``public``, ``private``, ``text_feedback``) and
``DIR/correct.json`` (``correct``, ``error``). Its examples write these two files through
``shinka.core.run_shinka_eval``; importing that package loads the whole runner (about 3.5 s
a process), so this evaluator writes the same files with the standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

TARGET = (1.2, -0.3, 0.7)


def load(program_path: str) -> Any:
    """Import the candidate program from its file."""
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(program_path: str) -> tuple[dict[str, Any], bool, str | None]:
    """Score the program: 1 / (1 + squared distance of its point to the target)."""
    try:
        point = [float(v) for v in load(program_path).run_experiment()]
        if len(point) != len(TARGET) or not all(math.isfinite(v) for v in point):
            raise ValueError(f"expected {len(TARGET)} finite numbers, got {point}")
    except Exception as exc:
        feedback = f"The program failed: {type(exc).__name__}: {exc}"
        return {"combined_score": 0.0, "text_feedback": feedback}, False, str(exc)
    distance = math.dist(point, TARGET)
    metrics = {
        "combined_score": 1.0 / (1.0 + distance**2),
        "public": {"distance": distance, "alpha": point[0], "beta": point[1], "gamma": point[2]},
        "private": {"squared_distance": distance**2},
        "text_feedback": f"The point is {distance:.3f} away from the target.",
    }
    return metrics, True, None


def main(argv: list[str] | None = None) -> int:
    """Evaluate one program and write metrics.json and correct.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--program_path", required=True)
    parser.add_argument("--results_dir", required=True)
    args = parser.parse_args(argv)
    metrics, correct, error = evaluate(args.program_path)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / "correct.json").write_text(json.dumps({"correct": correct, "error": error}))
    (results / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"combined_score={metrics['combined_score']:.6f} correct={correct}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
