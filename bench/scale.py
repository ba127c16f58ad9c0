"""The pipeline at growing data sizes: each component's seconds and the peak memory of the whole
process tree, before and after a change, side by side in one run.

For each size N the script writes a data root holding one UCI-format census file of N rows (the
rows of `--data` in a shuffled order, copied as often as needed; the same rows for the same N and
`--seed`), then runs `mmoe-pipeline run --spec schemas/census/uci-group1.yaml --data-root ROOT`
from scratch with each code version (`--baseline` and `--commit`, git worktrees on PYTHONPATH, as
`bench/pipeline_time.py` does), alternating. Memory is the sum of the resident set sizes of the
command and every process it started, sampled every `--sample-s` seconds (psutil); component
times are the console's `NAME complete N s` lines.

    python bench/scale.py --data census-income.test.gz --sizes 100000,1000000 --baseline HEAD~3
"""

import gzip
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

import click
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_time import COMPONENT, parse_output, worktrees  # noqa: E402 (a sibling script)

SPEC = os.path.join("schemas", "census", "uci-group1.yaml")
DATA_NAME = "census-income.test"  # a name the UCI spec's data root reads


def read_lines(path: str) -> List[str]:
    """The non-blank lines of a (gzipped) text file, newline kept."""
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        return [line if line.endswith("\n") else line + "\n" for line in f if line.strip()]


def make_data_root(source: str, rows: int, folder: str, seed: int = 0) -> str:
    """`folder` holding one file of `rows` lines of `source`: whole shuffled copies of it, then a
    shuffled part; deterministic in (`source`, `rows`, `seed`). Kept when it already holds them."""
    path = os.path.join(folder, DATA_NAME)
    done = folder.rstrip("/") + ".rows"  # beside the data root: the pipeline reads every file in it
    if os.path.exists(done) and open(done).read() == f"{rows} {seed} {os.path.abspath(source)}":
        return folder
    lines = read_lines(source)
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        left = rows
        while left:
            order = list(range(len(lines)))
            rng.shuffle(order)
            f.writelines(lines[i] for i in order[:left])
            left -= min(left, len(order))
    with open(done, "w") as f:
        f.write(f"{rows} {seed} {os.path.abspath(source)}")
    return folder


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of `process` and all its descendants (those that exited in between count 0)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class Running:
    """The components running now, from the console lines the log has received so far
    (``  NAME started`` / ``  NAME complete ...``)."""

    def __init__(self, log_path: str):
        self._log = open(log_path)
        self._partial = ""
        self.now: List[str] = []

    def update(self) -> List[str]:
        self._partial += self._log.read()
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            words = line.split()
            if len(words) >= 2 and line.startswith("  ") and words[1] in ("started", "complete"):
                if words[1] == "started" and words[0] not in self.now:
                    self.now.append(words[0])
                elif words[1] == "complete" and words[0] in self.now:
                    self.now.remove(words[0])
        return self.now

    def close(self):
        self._log.close()


def kill_tree(process: psutil.Process) -> None:
    for p in [*process.children(recursive=True), process]:
        try:
            p.kill()
        except psutil.Error:
            pass


def run_measured(command: Sequence[str], env: Dict[str, str], cwd: str, log_path: str,
                 sample_s: float = 0.5, max_memory_gb: Optional[float] = None) -> dict:
    """Runs `command`; its exit code, wall seconds, the peak of `tree_rss` while it ran and, per
    component, the peak while that component was running (`Running`). Above `max_memory_gb` the
    whole tree is killed, and ``over_memory`` names the components running then (the machine is
    kept out of its out-of-memory killer's hands)."""
    started = time.monotonic()
    peak = [0]
    by_component: Dict[str, int] = {}
    over: List[str] = []
    with open(log_path, "w") as log:
        child = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        process = psutil.Process(child.pid)
        stop = threading.Event()
        running = Running(log_path)

        def sample():
            while not stop.is_set():
                rss = tree_rss(process)
                peak[0] = max(peak[0], rss)
                for name in running.update():
                    by_component[name] = max(by_component.get(name, 0), rss)
                if max_memory_gb is not None and rss > max_memory_gb * 1e9 and not over:
                    over.extend(running.now or ["(start-up)"])
                    kill_tree(process)
                stop.wait(sample_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        stop.set()
        sampler.join()
        running.close()
    return {"exit": code, "wall_s": round(time.monotonic() - started, 1), "peak_gb": round(peak[0] / 1e9, 2),
            "component_peak_gb": {name: round(rss / 1e9, 2) for name, rss in by_component.items()},
            **({"over_memory": over, "max_memory_gb": max_memory_gb} if over else {})}


def run_pipeline(code_root: str, data_root: str, output_dir: str, extra: Sequence[str] = (),
                 sample_s: float = 0.5, max_memory_gb: Optional[float] = None) -> dict:
    """One `mmoe-pipeline run` of the UCI census spec on `data_root` with the code under `code_root`."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": code_root}
    command = [sys.executable, "-m", "pipeline.cli", "run", "--spec", os.path.join(code_root, SPEC),
               "--data-root", data_root, "--output-dir", output_dir, *extra]
    log_path = output_dir.rstrip("/") + ".log"
    measured = run_measured(command, env, code_root, log_path, sample_s, max_memory_gb)
    with open(log_path) as f:
        text = f.read()
    if "over_memory" in measured:  # what it finished before it was stopped
        return {**measured, "pipeline_s": None, "components": {n: float(s) for n, s in COMPONENT.findall(text)}}
    if measured["exit"]:
        raise RuntimeError(f"{' '.join(command)} exited with {measured['exit']}; see {log_path}:\n{text[-3000:]}")
    return {**measured, **parse_output(text, log_path)}


def table(results: Dict[str, Dict[int, dict]], sizes: Sequence[int]) -> str:
    """Markdown: a row per component (seconds) plus pipeline and peak memory, a column per code
    version and size, and the per-row rate of the largest size over the smallest."""
    versions = list(results)
    components: List[str] = []
    for by_size in results.values():
        for run in by_size.values():
            components += [c for c in run["components"] if c not in components]
    header = ["component"] + [f"{v} {n:,}" for v in versions for n in sizes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, value) -> str:
        return "| " + " | ".join([name] + [value(results[v][n]) for v in versions for n in sizes]) + " |"

    for c in components:
        lines.append(row(c, lambda r, c=c: f"{r['components'][c]:.1f}" if c in r["components"] else "-"))
    lines.append(row("pipeline (s)", lambda r: str(r["pipeline_s"]) if r["pipeline_s"] is not None else
                     f"stopped above {r['max_memory_gb']:g} GB during {', '.join(r['over_memory'])}"))
    lines.append(row("command (s)", lambda r: f"{r['wall_s']:.0f}"))
    lines.append(row("peak memory (GB)", lambda r: f"{r['peak_gb']:.2f}"))
    peaks = [c for c in components if any(c in run.get("component_peak_gb", {}) for by in results.values()
                                           for run in by.values())]
    for c in peaks:
        lines.append(row(f"peak GB during {c}",
                         lambda r, c=c: f"{r['component_peak_gb'][c]:.2f}" if c in r.get("component_peak_gb", {}) else "-"))
    return "\n".join(lines)


def parse_variants(values: Sequence[str]) -> Dict[str, List[str]]:
    """{name: run arguments} of ``NAME=ARGS`` values; {"": []} (one unnamed variant) when there are none."""
    variants: Dict[str, List[str]] = {}
    for value in values:
        name, sep, args = value.partition("=")
        if not sep or not name.isidentifier() or name in variants:
            raise click.BadParameter(f"received {value!r}; expected NAME=ARGS with a new identifier NAME, e.g. "
                                     "'w2=--beam-workers 2'.", param_hint="--variant")
        variants[name] = shlex.split(args)
    return variants or {"": []}


@click.command()
@click.option("--data", "source", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The census file whose rows the data roots are made of (census-income.test[.gz]).")
@click.option("--sizes", default="100000,1000000,3000000", show_default=True,
              help="Comma-separated row counts.")
@click.option("--baseline", default=None, help="An earlier commit run beside --commit (any git revision).")
@click.option("--commit", default="HEAD", show_default=True)
@click.option("--work-dir", default="bench_scale", show_default=True, type=click.Path(file_okay=False),
              help="Data roots (kept between runs), outputs, logs and scale.json.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffles the rows of each data root.")
@click.option("--sample-s", type=click.FloatRange(min=0.05), default=0.5, show_default=True)
@click.option("--max-memory-gb", type=click.FloatRange(min=0.1), default=None,
              help="Stop a run whose process tree exceeds this (it is reported as stopped, with the components "
                   "running then); default: no limit.")
@click.option("--pipeline-args", default="", help="More `mmoe-pipeline run` arguments, e.g. '--train-steps 500'.")
@click.option("--variant", "variants", multiple=True, metavar="NAME=ARGS",
              help="Run arguments compared side by side with each code version, e.g. 'w2=--beam-workers 2'; "
                   "repeatable (each adds to --pipeline-args).")
def main(source, sizes, baseline, commit, work_dir, seed, sample_s, max_memory_gb, pipeline_args, variants):
    counts = [int(s) for s in sizes.split(",") if s.strip()]
    work_dir = os.path.abspath(work_dir)
    roots = {n: make_data_root(source, n, os.path.join(work_dir, f"data-{n}"), seed) for n in counts}
    revisions = {"base": baseline, "new": commit} if baseline else {"new": commit}
    extra = parse_variants(variants)
    with worktrees(revisions) as versions:
        runs = {f"{name}{'/' + v if v else ''}": (f"{tag}{'-' + v if v else ''}", code_root, args)
                for name, (tag, code_root) in versions.items() for v, args in extra.items()}
        results: Dict[str, Dict[int, dict]] = {name: {} for name in runs}
        for n in counts:
            for name, (tag, code_root, args) in runs.items():
                output = os.path.join(work_dir, f"{tag}-{n}")
                shutil.rmtree(output, ignore_errors=True)
                result = run_pipeline(code_root, roots[n], output, [*shlex.split(pipeline_args), *args], sample_s,
                                      max_memory_gb)
                results[name][n] = result
                click.echo(f"{name} {n:,} rows: pipeline {result['pipeline_s']} s, peak {result['peak_gb']} GB"
                           + (f", stopped during {result['over_memory']}" if "over_memory" in result else ""), err=True)
    click.echo(table(results, counts))
    with open(os.path.join(work_dir, "scale.json"), "w") as f:
        json.dump({"sizes": counts, "results": {v: {str(n): r for n, r in by.items()} for v, by in results.items()}},
                  f, indent=2)


if __name__ == "__main__":
    main()
