"""The family sweep: one timm model per timm model module, inflated and checked (issue 13).

Per family (the module's smallest model by parameter count, see
``inflate.testing.timm_families``; the table is cached per timm version in
tests/adapters/timm_families.json), with randomised weights at t=8: conversion
(``strict=False``) and its time, then at the native size and at a small size (128², else
112², where the 2D model runs): the boring-video error against max(1e-4, 10 × the 2D
model's own float32-vs-float64 error), the largest frame-reordering effect relative to a
different clip's (permutation, shift, reversal), the frame-wise ops, any exception (one
line). Prints a markdown table; ``--write-readme`` puts it in README.md between the
family-table markers, so the README's table is generated, not typed.

    python benchmarks/zoo.py [--families resnet,vgg] [--small-only | --native-only]
                             [--timeout 300] [--write-readme] [--json out.json]

One model at a time in this process (deleted and collected after each); ``--timeout``
stops a family that runs too long (reported as an error), ``--memory-gb`` caps this
process's address space so that a model too large for the machine fails alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import re
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import timm
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inflate.testing import FamilyCheck, check_family, timm_families  # noqa: E402

FAMILY_CACHE = ROOT / "tests" / "adapters" / "timm_families.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- family-table:begin -->", "<!-- family-table:end -->"


class FamilyTimeout(BaseException):  # not an Exception: check_family catches those and would go on
    pass


def _alarm(signum: int, frame: object) -> None:
    raise FamilyTimeout("the family ran past --timeout")


def _size(result: FamilyCheck) -> str:
    return f"{result.size[0]}²" if result.size[0] == result.size[1] and result.size[0] else \
        ("-" if not result.size[0] else f"{result.size[0]}×{result.size[1]}")


def _figure(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2g}"


def markdown(rows: list[list[FamilyCheck]]) -> str:
    """The family table: one line per family, the native size and the small size side by side."""
    lines = ["| family | model | sizes | pass | boring error (threshold) | order effect | conversion s | "
             "reason if not passing |",
             "|---|---|---|---|---|---|---|---|"]
    for checks in rows:
        first = checks[0]
        sizes = " / ".join(_size(c) for c in checks)
        verdict = " / ".join({"pass": "yes", "fail": "**no**"}.get(c.status, c.status) for c in checks)
        boring = " / ".join(f"{_figure(c.boring_error)} ({_figure(c.threshold)})" if c.error == "" and not c.skipped
                            else "-" for c in checks)
        order = " / ".join(_figure(c.order_effect) for c in checks)
        reasons, shapes = [], []
        for c in checks:
            if c.passed or not c.reason:
                continue
            shape = re.sub(r"[-+.\de]+", "#", c.reason)  # the same reason with other figures: said once
            if shape in shapes:
                continue
            shapes.append(shape)
            text = "small size: the 2D model refuses 128² and 112²" if c.skipped else c.reason
            reasons.append(f"{_size(c)}: {text}" if len(checks) > 1 and not c.skipped else text)
        if len(reasons) == 1 and len(checks) > 1 and not any(c.skipped for c in checks):
            reasons = [reasons[0].split(": ", 1)[1]]  # one reason for both sizes
        reason = "; ".join(reasons).replace("|", "\\|")
        lines.append(f"| {first.family} | {first.model} | {sizes} | {verdict} | {boring} | {order} | "
                     f"{_figure(first.seconds)} | {reason} |")
    return "\n".join(lines)


def summary(rows: list[list[FamilyCheck]], native: bool, small: bool) -> str:
    """Pass counts at the native and the small size."""
    def counts(checks: list[FamilyCheck]) -> str:
        status = [c.status for c in checks]
        return (f"{status.count('pass')}/{len(checks)} pass, {status.count('frame-wise')} exact and order-sensitive "
                f"with frame-wise ops, {status.count('fail')} fail")

    parts = []
    if native:
        parts.append(f"native size: {counts([c[0] for c in rows])}")
    if small:
        smalls = [c[-1] for c in rows]
        ran = [c for c in smalls if not c.skipped]
        parts.append(f"small size (128², else 112²): {counts(ran)} of the {len(ran)} families whose 2D model takes it "
                     f"({len(smalls) - len(ran)} refuse both)")
    return "; ".join(parts)


def write_readme(table: str, path: Path = README) -> None:
    """Replace the text between the family-table markers of the README (atomically)."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers; add them where the table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    temporary.replace(path)


def run(families: dict[str, str], t: int, native: bool, small: bool, timeout: int, device: str = "cpu",
        on_result: Optional[Callable[[list[FamilyCheck], float], None]] = None,
        budget: float = math.inf) -> list[list[FamilyCheck]]:
    """Check each family in turn (one model in memory at a time); rows in the families' order.
    No family starts once ``budget`` seconds have passed."""
    rows = []
    sizes = int(native) + int(small)
    began = time.perf_counter()
    for family, name in families.items():
        if time.perf_counter() - began > budget:
            print(f"# --budget {budget:g} s spent: {len(families) - len(rows)} families not started", flush=True)
            break
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(timeout)
        start = time.perf_counter()
        try:
            checks = check_family(family, name, t, native=native, small=small, device=device)
        except FamilyTimeout:
            checks = [FamilyCheck(family, name, (0, 0), error=f"timeout: ran past --timeout {timeout} s")] * sizes
        except MemoryError:
            checks = [FamilyCheck(family, name, (0, 0), error="MemoryError: the model does not fit --memory-gb")] * sizes
        finally:
            signal.alarm(0)
        gc.collect()
        rows.append(checks)
        if on_result is not None:
            on_result(checks, time.perf_counter() - start)
    return rows


def select(names: Optional[Iterable[str]], refresh: bool = False) -> dict[str, str]:
    """The families to check, smallest model first (so a cut-short run has covered the most)."""
    families = timm_families(FAMILY_CACHE, refresh=refresh)
    if names:
        unknown = [n for n in names if n not in families]
        if unknown:
            raise SystemExit(f"unknown families {unknown}; known: {', '.join(families)}")
        families = {n: families[n] for n in names}
    params = {f: e["params"] for f, e in json.loads(FAMILY_CACHE.read_text())["families"].items()}
    return dict(sorted(families.items(), key=lambda item: (params.get(item[0], 0), item[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", help="comma-separated timm module names (default: all)")
    parser.add_argument("--t", type=int, default=8, help="clip length (default 8)")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--small-only", action="store_true", help="only the 128²/112² check")
    sizes.add_argument("--native-only", action="store_true", help="only the native-size check")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per family (default 300)")
    parser.add_argument("--budget", type=float, default=math.inf,
                        help="seconds for the whole run: no family starts after it (default none)")
    parser.add_argument("--only-missing", type=Path, nargs="+", metavar="JSON",
                        help="check only the families that these saved runs (--json) lack")
    parser.add_argument("--memory-gb", type=float, default=12.0,
                        help="address-space cap for this process on the CPU, 0 for none (default 12)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="where the checks run, e.g. cuda (conversion is on the CPU)")
    parser.add_argument("--refresh-families", action="store_true",
                        help=f"recount every timm model's parameters and rewrite {FAMILY_CACHE.name} (minutes)")
    parser.add_argument("--write-readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--json", type=Path, help="also write every check as JSON here")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="print (and with --write-readme write) the table of runs saved with --json, merged (later files "
                             "win); checks nothing")
    args = parser.parse_args()
    if args.from_json:
        merged: dict[str, list[FamilyCheck]] = {}
        for path in args.from_json:  # later files win, family by family (a CPU run, then a GPU run of the rest)
            saved = json.loads(path.read_text())
            if isinstance(saved, list):  # the first runs saved the rows alone, both sizes
                saved = {"rows": saved, "native": True, "small": True, "t": 8}
            if not (saved["native"] and saved["small"]):
                raise SystemExit(f"{path} holds a --native-only or --small-only run; the table needs both sizes")
            merged.update({checks[0].family: checks for checks in rows_from_json(saved["rows"])})
        families = timm_families(FAMILY_CACHE)
        missing = {f: m for f, m in families.items() if f not in merged}
        rows = [merged[f] for f in sorted(merged)]
        report(rows, True, True, args.write_readme, f"t={saved['t']}, timm {timm.__version__}", missing)
        return

    if args.memory_gb > 0 and args.device == "cpu":  # CUDA reserves more address space than any cap allows
        cap = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    if args.device != "cpu":  # TF32 would blur the boring-video comparison: float32 as on the CPU
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.threads:
        torch.set_num_threads(args.threads)
    families = select([n.strip() for n in args.families.split(",") if n.strip()] if args.families else None,
                      args.refresh_families)
    if args.only_missing:
        done = set()
        for path in args.only_missing:
            saved = json.loads(path.read_text())
            done |= {checks[0]["family"] for checks in (saved["rows"] if isinstance(saved, dict) else saved)
                     if not _timed_out(checks)}
        families = {f: m for f, m in families.items() if f not in done}
    stored = json.loads(FAMILY_CACHE.read_text()).get("timm")
    if stored != timm.__version__:
        print(f"# note: {FAMILY_CACHE.name} was counted with timm {stored}; --refresh-families recounts", flush=True)
    native, small = not args.small_only, not args.native_only
    print(f"# timm {timm.__version__}, torch {torch.__version__}, t={args.t}, {len(families)} families", flush=True)

    done: list[list[FamilyCheck]] = []

    def save(rows: list[list[FamilyCheck]], complete: bool) -> None:
        saved = {"t": args.t, "timm": timm.__version__, "native": native, "small": small, "families": args.families,
                 "complete": complete,
                 "rows": [[dataclasses.asdict(c) | {"passed": c.passed, "reason": c.reason} for c in checks]
                          for checks in rows]}
        temporary = args.json.with_name(args.json.name + ".tmp")
        temporary.write_text(json.dumps(saved, indent=1))
        temporary.replace(args.json)

    def progress(checks: list[FamilyCheck], seconds: float) -> None:
        done.append(checks)
        if args.json:  # after every family: a run cut short keeps what it measured
            save(done, complete=False)
        for c in checks:
            verdict = {"pass": "pass", "skip": "skip", "fail": "FAIL", "frame-wise": "FW"}[c.status]
            print(f"{c.family:28s} {c.model:40s} {_size(c):>5s} {verdict:4s} boring {_figure(c.boring_error):>7s} "
                  f"(thr {_figure(c.threshold)}) order {_figure(c.order_effect):>6s} convert "
                  f"{_figure(c.seconds)} s  {c.reason}", flush=True)
        print(f"  [{seconds:.1f} s]", flush=True)

    rows = run(families, args.t, native, small, args.timeout, args.device, progress, args.budget)
    rows.sort(key=lambda checks: checks[0].family)
    if args.json:
        save(rows, complete=True)
    if args.write_readme and (not (native and small) or args.families or args.only_missing
                              or len(rows) < len(families)):
        raise SystemExit("--write-readme needs the whole sweep at both sizes (no --families, --*-only)")
    report(rows, native, small, args.write_readme, f"t={args.t}, timm {timm.__version__}")


def _timed_out(checks: list[dict]) -> bool:
    return all(c.get("error", "").startswith("timeout:") for c in checks)


def rows_from_json(saved: list) -> list[list[FamilyCheck]]:
    """The rows of a run saved with --json; a family that ran past --timeout counts as not run."""
    fields = {f.name for f in dataclasses.fields(FamilyCheck)}
    rows = []
    for checks in saved:
        if _timed_out(checks):
            continue
        rows.append([FamilyCheck(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items() if k in fields})
                     for c in checks])
    return rows


def report(rows: list[list[FamilyCheck]], native: bool, small: bool, readme: bool, where: str,
           missing: Optional[dict[str, str]] = None) -> None:
    """Print the table and the pass counts; with ``readme``, write both into the README.
    ``missing`` families (not run) get a row saying so and are named under the counts."""
    table = markdown(rows)
    counts = summary(rows, native, small)
    if missing:
        table += "\n" + "\n".join(f"| {f} | {m} | - | not run | - | - | - | not run in this sweep: "
                                   f"`python benchmarks/zoo.py --families {f}` |" for f, m in sorted(missing.items()))
        counts += f"; {len(missing)} of {len(rows) + len(missing)} families not run yet ({', '.join(sorted(missing))})"
    print()
    print(table)
    print()
    print(counts)
    if readme:
        write_readme(f"{table}\n\n{counts} ({where}; `python benchmarks/zoo.py --write-readme`).")


if __name__ == "__main__":
    main()
