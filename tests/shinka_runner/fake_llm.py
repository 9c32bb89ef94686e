"""An OpenAI-compatible fake LLM and embedding server for ShinkaEvolve's evolution runner.

It answers what ShinkaEvolve 0.0.7 asks through its ``local/<model>@<url>`` provider, which
calls ``POST /v1/chat/completions`` and ``POST /v1/embeddings``: code edits in the diff,
full, cross and fix formats (a numeric constant of the EVOLVE block moves, so children are
valid, score differently and embed differently), the novelty judge, the three meta-summary
steps and system-prompt evolution. The judge calls every ``reject_every``-th question, and
any proposal whose EVOLVE block equals the existing one, NOT_NOVEL, so that the runner's
rejection sampling runs too. Answers are deterministic for a seed and an order of requests;
every request is counted by kind.

Standard library only: it runs in the test process, which need not have ShinkaEvolve.

    with serve(seed=0) as llm:
        llm.model_name("coder")   # 'local/coder@http://127.0.0.1:PORT/v1'
        llm.counts                # {'edit_diff': 7, 'novelty': 9, 'embeddings': 12, ...}
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

START_MARK = "EVOLVE-BLOCK-START"
END_MARK = "EVOLVE-BLOCK-END"

_FENCE = re.compile(r"```(?P<lang>[\w+#.-]*)[ \t]*\n(?P<body>.*?)\n?```", re.DOTALL)
_ASSIGNMENT = re.compile(
    r"^(?P<head>\s*[A-Za-z_]\w*\s*=\s*)(?P<value>-?\d+(?:\.\d+)?)(?P<tail>\s*(?:#.*)?)$"
)
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|[^\s\w]")
_RECOMMENDATION_COUNT = re.compile(r"generate (\d+) actionable recommendations")
_SCORE = re.compile(r"Combined score to maximize: (-?[\d.]+)")

# Phrases of ShinkaEvolve 0.0.7's prompts that tell the requests apart, most specific first.
_KINDS = (
    ("novelty", "determining if two code snippets are meaningfully different"),
    ("meta_summary", "analyzing an individual program"),
    ("meta_insights", "extract actionable optimization insights"),
    ("meta_recommendations", "generating actionable recommendations"),
    ("prompt_evolution", "expert prompt engineer"),
    ("init", "Please write an initial program"),
    ("edit_fix", "debugging and fixing an incorrect program"),
    ("edit_cross", "perform crossover between the code scripts"),
    ("edit_diff", "SEARCH/REPLACE"),
    ("edit_full", "<CODE>"),
)

_GUIDANCE = (
    "Change one tunable constant at a time and keep the steps small, so that every change "
    "of score can be traced to a single decision.",
    "Prefer values between those of the best programs seen so far: the score rewards being "
    "close to a target point that is not shown.",
    "Keep the function signatures and the returned tuple unchanged; only the numbers inside "
    "the editable block should move.",
    "When two programs score alike, keep the simpler one and explore another constant next.",
)


def classify(system: str, user: str) -> str:
    """Name the kind of a chat request from its system and user messages."""
    text = f"{system}\n{user}"
    for kind, phrase in _KINDS:
        if phrase in text:
            return kind
    return "other"


def embed(text: str, dim: int = 128) -> list[float]:
    """Embed text as a unit vector of signed, hashed unigram and bigram counts."""
    tokens = _TOKEN.findall(text)
    features = tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
    vector = [0.0] * dim
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dim
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def _fenced_after(text: str, marker: str) -> tuple[str, str] | None:
    """Return (language, body) of the first fenced block after marker, if any."""
    at = text.find(marker)
    if at < 0:
        return None
    match = _FENCE.search(text, at)
    return (match.group("lang"), match.group("body")) if match else None


def _block_lines(code: str) -> list[int]:
    """Return the indices of the numeric assignment lines inside EVOLVE blocks."""
    indices, inside = [], False
    for index, line in enumerate(code.splitlines()):
        if START_MARK in line:
            inside = True
        elif END_MARK in line:
            inside = False
        elif inside and _ASSIGNMENT.match(line):
            indices.append(index)
    return indices


def _evolve_body(code: str) -> str:
    """Return the EVOLVE blocks' lines with whitespace normalised, for comparisons."""
    lines, inside = [], False
    for line in code.splitlines():
        if START_MARK in line:
            inside = True
        elif END_MARK in line:
            inside = False
        elif inside and line.strip():
            lines.append(" ".join(line.split()))
    return "\n".join(lines)


def _format_number(value: float, as_int: bool) -> str:
    """Write a number the way a person would in code."""
    if as_int:
        return str(int(value))
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _moved(value: str, rng: random.Random) -> str:
    """Return a different literal near value."""
    if "." not in value:
        return str(int(value) + rng.choice((-2, -1, 1, 2)))
    old = float(value)
    step = rng.choice((-1.0, 1.0)) * rng.choice((0.05, 0.1, 0.2, 0.35, 0.6))
    new = _format_number(old + step * (0.5 + rng.random()), as_int=False)
    return new if float(new) != old else _format_number(old + 0.001, as_int=False)


def mutate(
    code: str, rng: random.Random, donor: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """Return code with EVOLVE-block constants changed, and the (old, new) lines changed."""
    lines = code.splitlines()
    indices = _block_lines(code)
    changes: dict[int, str] = {}
    if donor is not None:
        donor_values = {}
        for index in _block_lines(donor):
            match = _ASSIGNMENT.match(donor.splitlines()[index])
            if match:
                donor_values[match.group("head").strip()] = match.group("value")
        for index in indices:
            match = _ASSIGNMENT.match(lines[index])
            borrowed = donor_values.get(match.group("head").strip()) if match else None
            if match and borrowed not in (None, match.group("value")) and rng.random() < 0.5:
                changes[index] = f"{match.group('head')}{borrowed}{match.group('tail')}"
    if indices:
        index = rng.choice(indices)
        match = _ASSIGNMENT.match(changes.get(index, lines[index]))
        assert match is not None
        value = _moved(match.group("value"), rng)
        changes[index] = f"{match.group('head')}{value}{match.group('tail')}"
    pairs = [(lines[index], new) for index, new in sorted(changes.items())]
    for index, new in changes.items():
        lines[index] = new
    updated = "\n".join(lines) + ("\n" if code.endswith("\n") else "")
    return updated, pairs


def _tagged(name: str, description: str, body: str) -> str:
    """Wrap an answer in ShinkaEvolve's NAME / DESCRIPTION tags."""
    return f"<NAME>\n{name}\n</NAME>\n\n<DESCRIPTION>\n{description}\n</DESCRIPTION>\n\n{body}"


def _describe(pairs: list[tuple[str, str]]) -> str:
    """Say in words which lines an edit changes."""
    if not pairs:
        return "Add a marker comment inside the editable block."
    moves = "; ".join(f"'{old.strip()}' becomes '{new.strip()}'" for old, new in pairs)
    return f"Tune the constants of the candidate point: {moves}."


def _edit_answer(kind: str, user: str, rng: random.Random, number: int) -> str:
    """Answer a code-edit request in the format its patch type expects."""
    marker = "# Incorrect Program to Fix" if kind == "edit_fix" else "# Current program"
    found = _fenced_after(user, marker)
    if found is None:
        return "I could not find the current program in the request."
    language, code = found
    donor = None
    if kind == "edit_cross":
        inspiration = _fenced_after(user, "# Crossover Inspiration Programs")
        donor = inspiration[1] if inspiration else None
    updated, pairs = mutate(code, rng, donor)
    name = f"{kind.removeprefix('edit_')}_tune_{number}"
    if kind == "edit_diff":
        if pairs:
            blocks = "\n".join(
                f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n" for old, new in pairs
            )
        else:
            blocks = f"<<<<<<< SEARCH\n\n=======\n# fake edit {number}\n>>>>>>> REPLACE\n"
        return _tagged(name, _describe(pairs), f"<DIFF>\n{blocks}\n</DIFF>\n")
    if not pairs:
        updated = updated.replace(END_MARK, f"fake edit {number}\n# {END_MARK}", 1)
    fence = language or "python"
    return _tagged(name, _describe(pairs), f"<CODE>\n```{fence}\n{updated}\n```\n</CODE>\n")


def _novelty_answer(user: str, reject: bool) -> str:
    """Judge novelty as the runner expects: NOVEL or NOT_NOVEL first, then a reason."""
    existing = _fenced_after(user, "**EXISTING CODE:**")
    proposed = _fenced_after(user, "**PROPOSED CODE:**")
    if existing and proposed and _evolve_body(existing[1]) == _evolve_body(proposed[1]):
        return "NOT_NOVEL\nThe editable blocks of the two programs are identical."
    if reject:
        return "NOT_NOVEL\nOnly one constant moves; the approach is the same."
    return "NOVEL\nThe proposed program sets different constants in its editable block."


def _prompt_answer(user: str, rng: random.Random, number: int) -> str:
    """Evolve a system prompt: the current one with one more piece of guidance."""
    found = _fenced_after(user, "# Current System Prompt")
    current = found[1].strip() if found else "You are an expert software engineer."
    fresh = [line for line in _GUIDANCE if line not in current]
    addition = rng.choice(fresh) if fresh else f"Revision {number}: keep the steps small."
    prompt = f"{current}\n\n{addition}"
    description = f"Adds guidance drawn from the top programs: {addition}"
    return _tagged(f"prompt_revision_{number}", description, f"<PROMPT>\n{prompt}\n</PROMPT>\n")


def _meta_summary_answer(user: str) -> str:
    """Summarise one program in the format of meta step 1."""
    score = _SCORE.search(user)
    shown = score.group(1) if score else "unknown"
    return (
        "**Program Name: Constant tuning of the candidate point**\n"
        "- **Implementation**: Sets three numeric constants and returns them as a tuple.\n"
        f"- **Performance**: Combined score {shown}.\n"
        "- **Feedback**: Constants closer to the target raise the score."
    )


def _meta_insights_answer() -> str:
    """Write global insights in the sections of meta step 2."""
    return (
        "## Successful Algorithmic Patterns\n- Small moves of a single constant.\n\n"
        "## Ineffective Approaches\n- Large jumps that overshoot the target.\n\n"
        "## Implementation Insights\n- The returned tuple keeps its shape across programs.\n\n"
        "## Performance Analysis\n- Scores rise as the distance to the target shrinks."
    )


def _recommendations_answer(user: str) -> str:
    """List numbered recommendations as meta step 3 asks."""
    count = _RECOMMENDATION_COUNT.search(user)
    wanted = int(count.group(1)) if count else 3
    items = [
        "Move the constant that differs most from the best program by a small step.",
        "Try the midpoint between the two best values seen for one constant.",
        "Keep the other constants fixed while one of them is explored.",
        "Revisit a constant that has not changed for several generations.",
        "Undo a change that lowered the score and try the opposite direction.",
    ]
    return "\n".join(f"{i}. {items[(i - 1) % len(items)]}" for i in range(1, wanted + 1))


def _init_answer() -> str:
    """Offer a minimal initial program when the runner has none."""
    code = "def run_experiment():\n    return 0.0, 0.0, 0.0\n"
    body = f"<CODE>\n```python\n{code}```\n</CODE>\n"
    return _tagged("initial", "A constant starting point.", body)


def _message_text(content: Any) -> str:
    """Return the text of a chat message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class FakeLLM:
    """A fake OpenAI-compatible server: its base URL, model names and request counts."""

    def __init__(
        self,
        seed: int = 0,
        dim: int = 128,
        reject_every: int = 4,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.seed = seed
        self.dim = dim
        self.reject_every = reject_every
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-llm", daemon=True
        )

    @property
    def base_url(self) -> str:
        """Return the OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def counts(self) -> dict[str, int]:
        """Return a snapshot of the request counts by kind."""
        with self._lock:
            return dict(self._counts)

    def model_name(self, model: str) -> str:
        """Return the ShinkaEvolve model name that routes model to this server."""
        return f"local/{model}@{self.base_url}"

    def start(self) -> FakeLLM:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self, kind: str) -> int:
        """Count one request of kind and return its number (1-based)."""
        with self._lock:
            self._counts[kind] += 1
            return self._counts[kind]

    def chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer a chat-completions request."""
        messages = payload.get("messages") or []
        system = "\n".join(
            _message_text(m.get("content")) for m in messages if m.get("role") == "system"
        )
        user = "\n\n".join(
            _message_text(m.get("content")) for m in messages if m.get("role") == "user"
        )
        kind = classify(system, user)
        self._next("chat")
        number = self._next(kind)
        rng = random.Random(f"{self.seed}:{kind}:{number}")
        if kind.startswith("edit_"):
            content = _edit_answer(kind, user, rng, number)
        elif kind == "novelty":
            reject = self.reject_every > 0 and number % self.reject_every == 0
            content = _novelty_answer(user, reject)
        elif kind == "prompt_evolution":
            content = _prompt_answer(user, rng, number)
        elif kind == "meta_summary":
            content = _meta_summary_answer(user)
        elif kind == "meta_insights":
            content = _meta_insights_answer()
        elif kind == "meta_recommendations":
            content = _recommendations_answer(user)
        elif kind == "init":
            content = _init_answer()
        else:
            content = "This fake model only answers ShinkaEvolve's own prompts."
        prompt_tokens = (len(system) + len(user)) // 4
        completion_tokens = len(content) // 4
        return {
            "id": f"chatcmpl-fake-{kind}-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def embeddings(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer an embeddings request."""
        raw = payload.get("input", "")
        texts = [raw] if isinstance(raw, str) else [str(item) for item in raw]
        self._next("embeddings")
        with self._lock:
            self._counts["embedded_texts"] += len(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": embed(text, self.dim)}
            for i, text in enumerate(texts)
        ]
        tokens = sum(len(text) // 4 for text in texts)
        return {
            "object": "list",
            "data": data,
            "model": payload.get("model", "fake-embed"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class _Server(ThreadingHTTPServer):
    """The HTTP server, one thread a connection, that knows its FakeLLM."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeLLM):
        super().__init__(address, _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    """Route the few OpenAI endpoints ShinkaEvolve uses to the FakeLLM."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        """Serve chat completions and embeddings."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "request body is not JSON"}})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        fake = self.server.fake
        try:
            if path.endswith("/chat/completions"):
                self._send(200, fake.chat(payload))
            elif path.endswith("/embeddings"):
                self._send(200, fake.embeddings(payload))
            else:
                fake._next("unknown")
                self._send(404, {"error": {"message": f"no such endpoint: {path}"}})
        except Exception as exc:  # answer the client rather than drop the connection
            fake._next("errors")
            self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})

    def do_GET(self) -> None:
        """Serve the model list and the request counts (``/_fake/counts``)."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/_fake/counts"):
            self._send(200, self.server.fake.counts)
        elif path.endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no such endpoint: {path}"}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        """Write a JSON response with its length, keeping the connection open."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@contextmanager
def serve(seed: int = 0, dim: int = 128, reject_every: int = 4) -> Iterator[FakeLLM]:
    """Run a FakeLLM on a free port of 127.0.0.1 for the duration of the block."""
    fake = FakeLLM(seed=seed, dim=dim, reject_every=reject_every).start()
    try:
        yield fake
    finally:
        fake.close()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), then print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--reject-every", type=int, default=4,
                        help="judge every Nth novelty request NOT_NOVEL (0: never)")
    args = parser.parse_args(argv)
    fake = FakeLLM(
        seed=args.seed, dim=args.dim, reject_every=args.reject_every, port=args.port
    ).start()
    print(fake.base_url, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()
        print(json.dumps(fake.counts, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
