"""The whole pipeline's time on one data file, two commits side by side.

Each repeat runs `mmoe-pipeline run` from scratch (fresh output folder, so nothing is cached) once
with each commit's code (a `git worktree` of `--baseline` and one of `--commit`, each on
PYTHONPATH in turn), alternating, in the same Python environment. Reported per code version: the
pipeline time (`Pipeline ... finished in N s`, from the first component's start to the last's
end), the wall time of the command, and each component's time (ML Metadata); medians over the
repeats and the ratio of the medians.

    python bench/pipeline_time.py --data census-income.test.gz --baseline ecd1596 --commit HEAD --repeats 3
"""

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict

import click

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINISHED = re.compile(r"Pipeline \S+ finished in (\d+) s\.")
COMPONENT = re.compile(r"^\s+(\w+)\s+complete\s+([0-9.]+) s", re.MULTILINE)


def run_once(code_root: str, data_paths, output_dir: str, log_path: str) -> dict:
    """One `mmoe-pipeline run` with the code under `code_root`; its pipeline, wall and component times."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": code_root}
    command = [sys.executable, "-m", "pipeline.cli", "run", "--output-dir", output_dir,
               *[a for path in data_paths for a in ("--data", os.path.abspath(path))]]
    started = time.monotonic()
    with open(log_path, "w") as log:
        code = subprocess.run(command, env=env, cwd=code_root, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - started
    with open(log_path) as log:
        text = log.read()
    if code:
        raise RuntimeError(f"the run with {code_root} exited with {code}; see {log_path}:\n{text[-3000:]}")
    return {**parse_output(text, log_path), "wall_s": round(wall, 1)}


def parse_output(text: str, source: str) -> dict:
    """The pipeline time and each executed component's time, from the console output of
    `mmoe-pipeline run` (a cached component has no time: it did not run)."""
    finished = FINISHED.search(text)
    if not finished:
        raise ValueError(f"no 'Pipeline ... finished in' line in {source}")
    return {"pipeline_s": int(finished.group(1)),
            "components": {name: float(s) for name, s in COMPONENT.findall(text)}}


@contextlib.contextmanager
def worktrees(revisions: Dict[str, str], repo: str = ROOT):
    """A detached git worktree of each revision ({tag: revision}), removed afterwards; yields
    {"revision (short sha)": (tag, folder)} in the order given."""
    versions, shas = {}, set()
    try:
        for tag, revision in revisions.items():
            found = subprocess.run(["git", "-C", repo, "rev-parse", "--short", f"{revision}^{{commit}}"],
                                   capture_output=True, text=True)
            if found.returncode:
                raise click.BadParameter(f"{revision!r} is not a commit of {repo}: {found.stderr.strip()}",
                                         param_hint=f"--{'baseline' if tag == 'base' else 'commit'}")
            sha = found.stdout.strip()
            if sha in shas:
                raise click.BadParameter(f"{revision!r} is the same commit ({sha}) as the other one; compare two "
                                         "different commits.", param_hint="--commit")
            shas.add(sha)
            worktree = tempfile.mkdtemp(prefix=f"{tag}-")
            subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", worktree, sha], check=True,
                           capture_output=True)
            versions[f"{revision} ({sha})" if revision != sha else sha] = (tag, worktree)
        yield versions
    finally:
        for _, worktree in versions.values():
            subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", worktree], capture_output=True)


def summary(runs: list) -> dict:
    components = sorted({name for run in runs for name in run["components"]})
    return {"pipeline_s": statistics.median(r["pipeline_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "components": {c: statistics.median(r["components"].get(c, 0.0) for r in runs) for c in components}}


@click.command()
@click.option("--data", "data_paths", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--baseline", default="ecd1596", show_default=True, help="The earlier commit (any git revision).")
@click.option("--commit", default="HEAD", show_default=True, help="The commit to compare with it.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--output-dir", default="bench_pipeline_time", show_default=True)
def main(data_paths, baseline, commit, repeats, output_dir):
    output_dir = os.path.abspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    with worktrees({"base": baseline, "new": commit}) as versions:
        runs = {name: [] for name in versions}
        for repeat in range(repeats):
            for name, (tag, code_root) in versions.items():
                result = run_once(code_root, data_paths, os.path.join(output_dir, f"{tag}-{repeat}"),
                                  os.path.join(output_dir, f"{tag}-{repeat}.log"))
                runs[name].append(result)
                click.echo(f"{name} repeat {repeat + 1}: pipeline {result['pipeline_s']} s, wall {result['wall_s']} s",
                           err=True)
    medians = {name: summary(r) for name, r in runs.items()}
    (base_name, base), (new_name, new) = medians.items()
    components = sorted(set(base["components"]) | set(new["components"]),
                        key=lambda c: -max(base["components"].get(c, 0), new["components"].get(c, 0)))
    lines = [f"{repeats} repeats, medians (s)", "", f"| | {base_name} | {new_name} | ratio |", "|---|---|---|---|",
             f"| pipeline | {base['pipeline_s']:.0f} | {new['pipeline_s']:.0f} | "
             f"{new['pipeline_s'] / base['pipeline_s']:.2f} |",
             f"| command wall time | {base['wall_s']:.0f} | {new['wall_s']:.0f} | {new['wall_s'] / base['wall_s']:.2f} |"]
    for c in components:
        b, n = base["components"].get(c, 0.0), new["components"].get(c, 0.0)
        if max(b, n) >= 0.5:
            lines.append(f"| {c} | {b:.1f} | {n:.1f} | {n / b:.2f} |" if b else f"| {c} | - | {n:.1f} | |")
    lines.append("")
    lines.append("runs: " + "; ".join(f"{name}: {', '.join(str(r['pipeline_s']) for r in rs)} s"
                                      for name, rs in runs.items()))
    click.echo("\n".join(lines))
    with open(os.path.join(output_dir, "pipeline_time.json"), "w") as f:
        json.dump({"runs": runs, "medians": medians}, f, indent=2)


if __name__ == "__main__":
    main()
