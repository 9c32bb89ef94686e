"""Record what ShinkaEvolve's runner uses of ``shinka.database`` during one driver run.

    python tests/shinka_runner/trace_db_calls.py --out trace.json [--markdown trace.md] \\
        -- --mode sync --results-dir DIR --llm-url URL

Before the runner is imported, the database classes (``ProgramDatabase``,
``AsyncProgramDatabase``, ``SystemPromptDatabase``, the island manager and sampler, the
inspiration context builder) and the records (``Program``, ``DatabaseConfig``,
``SystemPrompt``, ``SystemPromptConfig``) get an attribute hook, and the ``shinka.database``
modules a module-attribute hook. Each attribute read, call, ``hasattr`` probe that failed,
write and construction is counted by the module that made it, with the argument shapes
(positional types, keyword names), the return types, the time spent and the thread the call
ran on (an event loop's, the main thread, or a worker). Uses from inside
``shinka.database`` itself are counted apart (only across classes), since a replacement
package need not reproduce them. Then ``drive.py`` runs with the given arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import sys
import threading
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CLASSES = {
    "ProgramDatabase": ("shinka.database.dbase", "ProgramDatabase"),
    "AsyncProgramDatabase": ("shinka.database.async_dbase", "AsyncProgramDatabase"),
    "SystemPromptDatabase": ("shinka.database.prompt_dbase", "SystemPromptDatabase"),
    "island_manager": ("shinka.database.islands", "CombinedIslandManager"),
    "island_sampler": ("shinka.database.island_sampler", "IslandSampler"),
    "InspirationContextBuilder": ("shinka.database.inspirations", "InspirationContextBuilder"),
    "Program": ("shinka.database.dbase", "Program"),
    "DatabaseConfig": ("shinka.database.dbase", "DatabaseConfig"),
    "SystemPrompt": ("shinka.database.prompt_dbase", "SystemPrompt"),
    "SystemPromptConfig": ("shinka.database.prompt_dbase", "SystemPromptConfig"),
}
MODULES = (
    "shinka.database",
    "shinka.database.dbase",
    "shinka.database.async_dbase",
    "shinka.database.prompt_dbase",
    "shinka.database.inspirations",
    "shinka.database.islands",
    "shinka.database.island_sampler",
)
IGNORED_CALLERS = ("importlib", "dataclasses", "typing", "inspect", "copy", __name__)


def shape(value: Any, depth: int = 0) -> str:
    """Describe a value's type, one level into containers."""
    if value is None:
        return "None"
    if isinstance(value, (list, tuple, set)) and depth < 2:
        kind = type(value).__name__
        if not value:
            return f"{kind}[]"
        if isinstance(value, tuple):
            return f"tuple[{', '.join(shape(v, depth + 1) for v in value[:6])}]"
        return f"{kind}[{shape(next(iter(value)), depth + 1)}]"
    if isinstance(value, dict) and depth < 2:
        if not value:
            return "dict[]"
        key, item = next(iter(value.items()))
        return f"dict[{shape(key, depth + 1)}, {shape(item, depth + 1)}]"
    return type(value).__name__


class Recorder:
    """Counts of member uses keyed by (target, member, caller module)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uses: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entry(self, target: str, member: str, caller: str) -> dict[str, Any]:
        """Return the mutable record of one (target, member, caller)."""
        key = (target, member, caller)
        found = self.uses.get(key)
        if found is None:
            found = {
                "reads": 0, "calls": 0, "missing": 0, "writes": 0, "delegated": 0,
                "seconds": 0.0, "signatures": defaultdict(int), "returns": defaultdict(int),
                "values": defaultdict(int), "where": defaultdict(int),
            }
            self.uses[key] = found
        return found

    def note(self, target: str, member: str, caller: str, field: str, value: str = "") -> None:
        """Count one read, write, probe or delegation."""
        with self.lock:
            entry = self.entry(target, member, caller)
            entry[field] += 1
            if value:
                entry["values"][value] += 1

    def call(self, target: str, member: str, caller: str, args: tuple, kwargs: dict,
             result: Any, seconds: float) -> None:
        """Count one call with its argument and return shapes."""
        positional = ", ".join(shape(a) for a in args)
        keywords = ", ".join(f"{k}={shape(v)}" for k, v in sorted(kwargs.items()))
        signature = f"({positional}{'; ' if positional and keywords else ''}{keywords})"
        where = where_called()
        with self.lock:
            entry = self.entry(target, member, caller)
            entry["where"][where] += 1
            entry["calls"] += 1
            entry["seconds"] += seconds
            entry["signatures"][signature] += 1
            entry["returns"][shape(result)] += 1

    def as_json(self) -> list[dict[str, Any]]:
        """Return the records as plain data, sorted."""
        rows = []
        for (target, member, caller), entry in sorted(self.uses.items()):
            row = {"target": target, "member": member, "caller": caller}
            for name, value in entry.items():
                row[name] = dict(value) if isinstance(value, defaultdict) else value
            row["seconds"] = round(row["seconds"], 4)
            rows.append(row)
        return rows


RECORDER = Recorder()


def where_called() -> str:
    """Tell whether the current call runs on an event loop's thread or another thread."""
    if asyncio._get_running_loop() is not None:
        return "loop"
    return "main" if threading.current_thread() is threading.main_thread() else "worker"


def caller_of(depth: int) -> str:
    """Return the module name of the frame depth levels up."""
    return sys._getframe(depth + 1).f_globals.get("__name__", "?")


def is_internal(caller: str) -> bool:
    """Tell whether a use comes from inside shinka.database."""
    return caller.startswith("shinka.database")


def ignored(caller: str) -> bool:
    """Tell whether a caller is machinery rather than a user of the API."""
    return caller.startswith(IGNORED_CALLERS)


def wrap_callable(target: str, member: str, caller: str, func: Any) -> Any:
    """Return func wrapped so that its calls are recorded against caller."""
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = await func(*args, **kwargs)
            RECORDER.call(target, member, caller, args, kwargs, result,
                          time.perf_counter() - started)
            return result
        return traced_async

    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = func(*args, **kwargs)
        RECORDER.call(target, member, caller, args, kwargs, result,
                      time.perf_counter() - started)
        return result
    return traced


def trace_class(target: str, cls: type, internal_ok: bool) -> None:
    """Hook attribute reads, writes and construction of cls's instances."""
    own_module = cls.__module__
    fallback = cls.__dict__.get("__getattr__")
    original_init = cls.__init__

    def __getattribute__(self: Any, name: str) -> Any:
        if name.startswith("__"):
            return object.__getattribute__(self, name)
        caller = caller_of(1)
        skip = ignored(caller) or caller == own_module or (
            is_internal(caller) and not internal_ok
        )
        try:
            value = object.__getattribute__(self, name)
            how = "reads"
        except AttributeError:
            if fallback is None:
                if not skip:
                    RECORDER.note(target, name, caller, "missing")
                raise
            try:
                value = fallback(self, name)
            except AttributeError:
                if not skip:
                    RECORDER.note(target, name, caller, "missing")
                raise
            how = "delegated"
        if skip:
            return value
        is_method = isinstance(value, types.MethodType) or inspect.isfunction(value)
        RECORDER.note(target, name, caller, how, "" if is_method else shape(value))
        return wrap_callable(target, name, caller, value) if is_method else value

    def __setattr__(self: Any, name: str, value: Any) -> None:
        caller = caller_of(1)
        if not (ignored(caller) or caller == own_module or is_internal(caller)):
            RECORDER.note(target, name, caller, "writes", shape(value))
        object.__setattr__(self, name, value)

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        caller = caller_of(1)
        started = time.perf_counter()
        original_init(self, *args, **kwargs)
        if not ignored(caller) and caller != own_module and (
            internal_ok or not is_internal(caller)
        ):
            RECORDER.call(target, "__init__", caller, args, kwargs, None,
                          time.perf_counter() - started)

    cls.__getattribute__ = __getattribute__
    cls.__setattr__ = __setattr__
    cls.__init__ = __init__


class TracedModule(types.ModuleType):
    """A module whose attribute reads from other modules are recorded."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name.startswith("__"):
            return value
        caller = caller_of(1)
        if ignored(caller) or is_internal(caller):
            return value
        target = f"module {super().__getattribute__('__name__')}"
        RECORDER.note(target, name, caller, "reads", shape(value))
        return wrap_callable(target, name, caller, value) if inspect.isfunction(value) else value


def install() -> None:
    """Hook the shinka.database classes and modules (before the runner is imported)."""
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.__class__ = TracedModule
    for target, (module_name, class_name) in CLASSES.items():
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        records = target in ("Program", "DatabaseConfig", "SystemPrompt", "SystemPromptConfig")
        trace_class(target, cls, internal_ok=not records)


def group(caller: str) -> str:
    """Name the side a caller is on."""
    if is_internal(caller):
        return "internal"
    if caller.startswith("shinka."):
        return "runner"
    return "driver"


def markdown(rows: list[dict[str, Any]]) -> str:
    """Render the records as one table per target."""
    lines: list[str] = []
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_target[row["target"]].append(row)
    for target, members in by_target.items():
        lines += [f"### {target}", "",
                  "| member | side | callers | reads | calls | missing | writes | seconds | "
                  "threads | arguments (count) | returns / values |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for row in members:
            key = (row["member"], group(row["caller"]))
            into = merged.setdefault(key, {
                "callers": set(), "reads": 0, "calls": 0, "missing": 0, "writes": 0,
                "delegated": 0, "seconds": 0.0, "where": defaultdict(int),
                "signatures": defaultdict(int), "returns": defaultdict(int),
            })
            into["callers"].add(row["caller"].removeprefix("shinka."))
            for name in ("reads", "calls", "missing", "writes", "delegated", "seconds"):
                into[name] += row[name]
            for name, source in (("signatures", "signatures"), ("returns", "returns"),
                                 ("returns", "values"), ("where", "where")):
                for text, count in row[source].items():
                    into[name][text] += count
        for (member, side), info in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            signatures = "; ".join(
                f"`{s}` ({n})" for s, n in sorted(info["signatures"].items(), key=lambda x: -x[1])
            )
            returns = ", ".join(f"`{r}`" for r in sorted(info["returns"]))
            threads = ", ".join(f"{w} {n}" for w, n in sorted(info["where"].items()))
            reads = info["reads"] + info["delegated"]
            read_text = f"{reads} (via __getattr__)" if info["delegated"] else str(reads)
            lines.append(
                f"| `{member}` | {side} | {', '.join(sorted(info['callers']))} | {read_text} "
                f"| {info['calls']} | {info['missing']} | {info['writes']} "
                f"| {info['seconds']:.3f} | {threads} | {signatures} "
                f"| {returns} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Install the hooks, run the driver, write the records."""
    argv = sys.argv[1:] if argv is None else argv
    ours, drive_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) \
        if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON records")
    parser.add_argument("--markdown", type=Path, help="the records as Markdown tables")
    args = parser.parse_args(ours)
    install()
    sys.path.insert(0, str(HERE))
    import drive

    status = drive.main(drive_args)
    rows = RECORDER.as_json()
    args.out.write_text(json.dumps(rows, indent=1, sort_keys=True))
    if args.markdown:
        args.markdown.write_text(markdown(rows))
    return status


if __name__ == "__main__":
    sys.exit(main())
