"""Run the recipe comparison: training arms with equal CPU budgets, then one evaluation run over all of them.

Each arm is a preset (`spadekit train --config NAME`) trained in its own run folder until its process tree
has used `--budget-cpu-minutes` of CPU time (user + system, the trainer and its data workers together), then
stopped with SIGTERM, which checkpoints. CPU time rather than wall time keeps the arms equal when other work
shares the machine; with `--threads 2` on an otherwise idle 2-core machine, 90 CPU minutes are about 45 minutes
of wall time. The CPU time used so far is kept in RUN/budget.json, so a stopped comparison continues where it
left off (the trainer resumes from its newest checkpoint).

    python tools/recipe_compare.py train --data data/landscapes --root runs/recipe \\
        --arm a=recipe_a_base --arm b=recipe_b_diffaug --parallel 2 --threads 1 --budget-cpu-minutes 90
    python tools/recipe_compare.py eval --root runs/recipe --heldout data/heldout --out docs/recipe [-- EVAL OPTIONS]

`eval` exports each arm's newest checkpoint (EMA weights) and measures all arms in ONE `spadekit eval` run on
the real held-out photos (same crops, same seeds), writing OUT/report.json and its sample sheet.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds_of_tree(root_pid: int) -> float:
    """User + system CPU seconds of a live process and all its live descendants (and their reaped children)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        # utime, stime, cutime, cstime (fields 14-17 of stat; index 11-14 after the command name)
        times[pid] = sum(int(x) for x in fields[11:15]) / CLK_TCK
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def _budget_file(run: Path) -> Path:
    return run / "budget.json"


def _used(run: Path) -> float:
    path = _budget_file(run)
    return json.loads(path.read_text())["cpu_seconds"] if path.exists() else 0.0


def _save_used(run: Path, seconds: float, budget: float) -> None:
    run.mkdir(parents=True, exist_ok=True)
    tmp = _budget_file(run).with_suffix(".tmp")
    tmp.write_text(json.dumps({"cpu_seconds": round(seconds, 1), "budget_seconds": budget}) + "\n")
    os.replace(tmp, _budget_file(run))


def _start(arm_preset: str, run: Path, data: str, threads: int, seed: int, overrides: list[str]) -> subprocess.Popen:
    resume = (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("step_*.pt"))
    command = [sys.executable, "-m", "spadekit.cli", "train", "--config", arm_preset, f"data.root={data}",
               f"train.num_threads={threads}", f"train.seed={seed}", *overrides, "--out", str(run)]
    if resume:
        command.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    log = open(run / "train.log", "a")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def train(args) -> int:
    root = Path(args.root)
    budget = args.budget_cpu_minutes * 60.0
    queue = []
    for spec in args.arm:
        name, _, preset = spec.partition("=")
        run = root / name
        run.mkdir(parents=True, exist_ok=True)
        if _used(run) >= budget:
            print(f"{name}: budget already spent ({_used(run) / 60:.1f} CPU min)")
            continue
        queue.append((name, preset, run))
    live: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    while queue or live:
        while queue and len(live) < args.parallel:
            name, preset, run = queue.pop(0)
            print(f"{name}: start {preset} ({_used(run) / 60:.1f} of {budget / 60:.0f} CPU min used)", flush=True)
            live[name] = (_start(preset, run, args.data, args.threads, args.seed, args.set), run, _used(run))
        time.sleep(args.poll)
        for name in list(live):
            process, run, before = live[name]
            used = before + _cpu_seconds_of_tree(process.pid)
            if process.poll() is not None:
                # the tree is gone: keep the last reading (the sleep above bounds the error)
                print(f"{name}: trainer ended with status {process.returncode} at {_used(run) / 60:.1f} CPU min", flush=True)
                del live[name]
                continue
            _save_used(run, used, budget)
            if used >= budget:
                print(f"{name}: budget reached ({used / 60:.1f} CPU min): stopping", flush=True)
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()
                del live[name]
    return 0


def evaluate(args) -> int:
    root = Path(args.root)
    models = []
    for run in sorted(p for p in root.iterdir() if (p / "checkpoints").is_dir()):
        out = run / "model"
        subprocess.run([sys.executable, "-m", "spadekit.cli", "export-run", str(run), str(out)], check=True)
        models.append(str(out))
    if not models:
        print(f"no runs with checkpoints under {root}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "spadekit.cli", "eval", "--model", models[0], "--data", args.heldout,
               "--out", str(out / "report.json")]
    if len(models) > 1 or args.baseline:
        command += ["--compare", *models[1:], *([args.baseline] if args.baseline else [])]
    subprocess.run(command + args.eval_args, check=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the arms to their CPU budget (resumable)")
    t.add_argument("--data", required=True)
    t.add_argument("--root", required=True)
    t.add_argument("--arm", action="append", required=True, metavar="NAME=PRESET")
    t.add_argument("--budget-cpu-minutes", type=float, default=90.0)
    t.add_argument("--parallel", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every arm")
    t.add_argument("--poll", type=float, default=5.0)
    t.set_defaults(func=train)
    e = sub.add_parser("eval", help="export every arm and measure them in one run on the held-out photos")
    e.add_argument("--root", required=True)
    e.add_argument("--heldout", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--baseline", default=None, help="another model measured in the same run (e.g. default)")
    e.set_defaults(func=evaluate)
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.eval_args = argv[split + 1:]  # after --: passed to `spadekit eval` as they are
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
