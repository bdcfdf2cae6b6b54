"""Training throughput of ``kerasnets train``: one process against two workers of a
``MultiWorkerMirroredStrategy`` job on this machine's loopback, at the same global batch.

Each setup is a real training run (subprocesses, ``TF_CONFIG`` with 127.0.0.1 ports for the
workers). Throughput is the chief's measure: global batch / median step time, steps after the
first (tracing) one; the wall time covers the whole run (start-up, tracing, steps, saving).

    python benchmarks/train_throughput.py --model mobilenet_v3_small --input-size 32 \\
        --batch-size 64 --steps 20

On one machine, two workers share its cores and add an all-reduce per step over loopback gRPC:
the table measures that overhead, not a speed-up; more machines (or GPUs) are where the
multi-worker strategy pays.
"""

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

LOG = logging.getLogger("train_throughput")
REPO = Path(__file__).resolve().parents[1]
EMBEDDED_ZIP = REPO / "kerasnets" / "data" / "cifar10_mini.zip"


def write_folder(root, per_class):
    """Returns ``root`` after writing ``per_class`` training JPEGs per class of the embedded
    CIFAR-10 subset into ``root/<class>/``."""
    counts = {}
    with zipfile.ZipFile(EMBEDDED_ZIP) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if parts[0] == "train" and len(parts) == 3 and parts[2] and \
                    counts.get(parts[1], 0) < per_class:
                counts[parts[1]] = counts.get(parts[1], 0) + 1
                (root / parts[1]).mkdir(parents=True, exist_ok=True)
                (root / parts[1] / parts[2]).write_bytes(archive.read(name))
    if not counts:
        raise ValueError(f"no training images in {EMBEDDED_ZIP}")
    return root


def free_port():
    """Returns a free TCP port of 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_setup(workers, args, data, work_dir, timeout_s):
    """Returns ``{"images_per_second", "wall_s", "steps"}`` of one training run with
    ``workers`` processes (1: the default strategy; more: MultiWorkerMirroredStrategy)."""
    checkpoint_dir = Path(tempfile.mkdtemp(dir=work_dir, prefix=f"w{workers}-"))
    command = [sys.executable, "-m", "kerasnets", "train", "--model", args.model,
               "--input-size", str(args.input_size), "--data", str(data),
               "--batch-size", str(args.batch_size), "--epochs", "1",
               "--steps-per-epoch", str(args.steps), "--seed", "0",
               "--checkpoint-dir", str(checkpoint_dir), "--log-level", "WARNING"]
    for item in args.model_arg or []:
        command += ["--model-arg", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if workers > 1:
        command += ["--strategy", "multiworker"]
        cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(workers)]}
        envs = [{**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": i}})}
                for i in range(workers)]
    else:
        command += ["--strategy", "default"]
        envs = [env]
    start = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=REPO, env=e, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for e in envs]
    try:
        outputs = [p.communicate(timeout=timeout_s)[0] for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    wall = time.perf_counter() - start
    for process, output in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"a {workers}-process run failed (exit {process.returncode}):\n"
                               f"{output[-3000:]}")
    result = json.loads((checkpoint_dir / "result.json").read_text())
    return {"images_per_second": result["images_per_second"], "wall_s": wall,
            "steps": result["steps"]}


def measure(args, data, work_dir):
    """Returns one row per setup (1 process, ``args.workers`` workers): medians over
    ``args.repeats`` runs, interleaved."""
    runs = {1: [], args.workers: []}
    for repeat in range(args.repeats):
        for workers in runs:
            LOG.info("run %d/%d: %d process(es)", repeat + 1, args.repeats, workers)
            runs[workers].append(run_setup(workers, args, data, work_dir, args.timeout))
    rows = []
    for workers, results in runs.items():
        rows.append({
            "setup": "1 process (default strategy)" if workers == 1 else
                     f"{workers} workers (MultiWorkerMirroredStrategy, loopback)",
            "processes": workers, "global_batch": args.batch_size,
            "per_worker_batch": args.batch_size // workers,
            "images_per_second": statistics.median(r["images_per_second"] for r in results),
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "steps": results[0]["steps"], "repeats": len(results),
        })
    return rows


def format_table(rows):
    """Returns the rows as a Markdown table, with throughput relative to the first row."""
    base = rows[0]["images_per_second"]
    lines = ["| setup | global batch | batch per worker | images/s (median step) | "
             "vs 1 process | wall time (whole run) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setup']} | {r['global_batch']} | {r['per_worker_batch']} | "
                     f"{r['images_per_second']:.1f} | {r['images_per_second'] / base:.2f}x | "
                     f"{r['wall_s']:.0f} s |")
    return "\n".join(lines)


def parse_args(argv=None):
    """Returns the parsed command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v3_small", help="registered model")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="builder argument, repeatable (as kerasnets train)")
    parser.add_argument("--input-size", type=int, default=32, help="image side (default: 32)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (default: 64)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default: 20)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the multi-worker "
                        "setup (default: 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setup (default: 1)")
    parser.add_argument("--per-class", type=int, default=50,
                        help="embedded training images per class (default: 50)")
    parser.add_argument("--data", help="image folder to train on (default: the embedded subset)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per run (default: 900)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    for name in ("input_size", "batch_size", "steps", "workers", "repeats", "per_class"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.workers < 2 or args.batch_size % args.workers:
        parser.error("--workers must be >= 2 and divide --batch-size")
    return args


def main(argv=None):
    """Runs the benchmark; returns the exit status (0 ok, 1 a run failed)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as work:
        work_dir = Path(work)
        data = Path(args.data) if args.data else write_folder(work_dir / "data", args.per_class)
        try:
            rows = measure(args, data, work_dir)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            LOG.error("%s", err)
            return 1
    print(f"\n{args.model} {args.input_size}x{args.input_size}, {args.steps} steps, "
          f"{os.cpu_count()} CPU cores\n")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
