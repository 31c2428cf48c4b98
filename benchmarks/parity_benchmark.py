r"""lcl_jax against a plain PyTorch + transformers loop: same rows, same recipe, one core.

Trains the same recipe with `python -m experiments.train` (lcl_jax) and with a minimal
PyTorch loop over `transformers.AutoModelForSequenceClassification` (`torch_loop`
below, ~120 lines, the loop a researcher would write), one process at a time,
alternated per seed, each pinned to one CPU core (`--core`) with one compute thread,
and prints per system and seed: test accuracy / macro-F1 after every epoch, total
CPU-seconds (user + system, from the child's rusage), peak RSS, steady-state seconds
per training step and CPU-seconds of a steady-state epoch (epochs 2+, training and
evaluation, no compilation), then the mean over seeds and the lcl_jax / PyTorch ratios.

The recipe (issue 22; all flags): MiniLM (all-MiniLM-L6-v2), EmoInt's full train split
(3,613 texts), cross-entropy on the texts only, 32 texts a batch, max_length 64, AdamW
lr 2e-5 decaying linearly to 0 without warm-up, eps 1e-6, weight decay 0.01 (none on
biases and LayerNorm), gradient clipping at norm 1.0, dropout 0.1, 3 epochs, test and
validation evaluated after every epoch.

Systems (`--systems`, any of):
  lcl_jax:hf     lcl_jax, Φ with the checkpoint's transformers head (--head=hf)
  lcl_jax:paper  lcl_jax, Φ with the LCL release's head (--head=paper, the default)
  torch:hf       the PyTorch loop, AutoModelForSequenceClassification's own head
  torch:paper    the PyTorch loop with the release's head transcribed (new dense ->
                 dropout -> ReLU -> dense -> dropout on the logits, normal(0.02) init,
                 the checkpoint's pooler unused)

  python -m benchmarks.parity_benchmark --data_dir=../shared/data --seeds=0,1,2 \
    --systems=lcl_jax:hf,torch:hf,lcl_jax:paper --output=parity.json

`--objective=scl|lcl` (issue 22 item 4): both systems train SCL or LCL on K texts + K
WordNet views (lcl_jax's own batches, the same rows in the same order in both: the
PyTorch side is `pytorch_loop.contrastive_loop`, with a SupCon term or the release's
LCL, Ψ an encoder + ElectraClassificationHead), Φ with the checkpoint's head; besides
the table it prints both loss curves at every step lcl_jax logged:

  python -m benchmarks.parity_benchmark --data_dir=../shared/data --objective=lcl \
    --epochs=1 --systems=lcl_jax:hf,torch:hf

Needs torch (the [test] extra). The lcl_jax runs use a compilation cache of their own
under --workdir (`--cache=cold` empties it before every lcl_jax run, `warm` keeps it, so
only the first run of each shape set compiles). Output: a table on stdout and, with
--output, the JSON of every run. Not a test: it prints numbers.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time

from absl import app, flags

from benchmarks.pytorch_loop import contrastive_loop, lockstep, torch_loop

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Release data folder (default $LCL_DATA_DIR).")
flags.DEFINE_string("dataset", "emoint", "Single-label dataset both systems train on.")
flags.DEFINE_enum("objective", "ce", ["ce", "scl", "lcl"],
                  "ce: the recipe on the texts. scl / lcl: K texts + K WordNet views, lcl_jax "
                  "against `pytorch_loop.contrastive_loop` on lcl_jax's batches (head hf); "
                  "prints both loss curves.")
flags.DEFINE_list("systems", ["lcl_jax:hf", "torch:hf"], "Systems, alternated per seed.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_integer("epochs", 3, "Epochs.")
flags.DEFINE_integer("texts_per_batch", 32, "Texts per training batch.")
flags.DEFINE_integer("max_length", 64, "Truncation length.")
flags.DEFINE_float("learning_rate", 2e-5, "Peak learning rate (linear decay to 0).")
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.")
flags.DEFINE_integer("core", 0, "CPU core every child process is pinned to.")
flags.DEFINE_enum("cache", "warm", ["warm", "cold"], "lcl_jax compilation cache per run.")
flags.DEFINE_string("workdir", "/tmp/lcl_parity", "Scratch folder (runs, cache).")
flags.DEFINE_string("output", None, "Write every run's JSON here.")
flags.DEFINE_list("lcl_jax_flags", [], "Extra experiments.train flags (ablations).")
flags.DEFINE_integer("max_train_examples", None, "A fixed subset of the train split for both "
                     "systems (lcl_jax's fixed_subset; for a quick try of the script).")
flags.DEFINE_string("child", None, "Internal: run one torch loop (JSON spec) and exit.")
flags.DEFINE_integer("lockstep_steps", 0, "Instead of training: run this many of the recipe's "
                     "first training batches through lcl_jax (--head=hf) and the PyTorch loop "
                     "from the same weights with dropout off (`lockstep`) and print both "
                     "loss curves.")

RECIPE_NOTE = ("MiniLM, {dataset} full train, {objective}, batch {texts_per_batch} texts, "
               "max_length {max_length}, AdamW {learning_rate} linear to 0, eps 1e-6, wd 0.01 "
               "(not biases/LayerNorm), clip 1.0, dropout 0.1, {epochs} epochs, 1 core")


# ----------------------------------------------------------------------------------------
# Running and measuring the children.

def _run_child(command: list[str], env: dict[str, str], log_path: pathlib.Path):
  """Runs `command` pinned to --core; returns (rc, cpu seconds, peak RSS bytes, wall s)."""
  core = FLAGS.core
  start = time.perf_counter()
  with open(log_path, "w") as log_file:
    process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                               preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    _, status, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  rc = os.waitstatus_to_exitcode(status)
  return rc, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, wall, {
      "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime,
      "minor_faults": usage.ru_minflt}


def _child_env(threads: int = 1) -> dict[str, str]:
  env = dict(os.environ)
  env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
             TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
  if FLAGS.data_dir:
    env["LCL_DATA_DIR"] = FLAGS.data_dir
  return env


def _epoch_times(train_log: pathlib.Path) -> list[float]:
  """Timestamps (s) of the trainer's 'epoch k/N' lines in train.log."""
  stamps = []
  for line in train_log.read_text().splitlines():
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO lcl_jax.train: epoch \d+/", line)
    if match:
      stamps.append(time.mktime(time.strptime(match.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
                    + int(match.group(1)[20:]) / 1000)
  return stamps


def run_lcl_jax(head: str, seed: int, root: pathlib.Path) -> dict:
  workdir = root / f"lcl_jax_{head}_seed{seed}"
  shutil.rmtree(workdir, ignore_errors=True)
  cache = root / "jax_cache"
  if FLAGS.cache == "cold":
    shutil.rmtree(cache, ignore_errors=True)
  env = _child_env()
  env["LCL_JAX_COMPILATION_CACHE"] = str(cache)
  views = ["--baseline_views=texts"] if FLAGS.objective == "ce" else []
  command = [sys.executable, "-m", "experiments.train", f"--dataset={FLAGS.dataset}",
             f"--objective={FLAGS.objective}", "--encoder=minilm", *views,
             f"--head={head}", f"--texts_per_batch={FLAGS.texts_per_batch}",
             f"--max_length={FLAGS.max_length}", f"--learning_rate={FLAGS.learning_rate}",
             f"--epochs={FLAGS.epochs}", f"--seed={seed}", f"--workdir={workdir}",
             f"--eval_batch_size={FLAGS.eval_batch_size}", "--progress_bar=false",
             *(f"--{f.lstrip('-')}" for f in FLAGS.lcl_jax_flags)]
  if FLAGS.data_dir:
    command.append(f"--data_dir={FLAGS.data_dir}")
  if FLAGS.max_train_examples:
    command.append(f"--max_train_examples={FLAGS.max_train_examples}")
  rc, cpu, rss, wall, usage = _run_child(command, env, root / f"lcl_jax_{head}_seed{seed}.log")
  out = {"system": f"lcl_jax:{head}", "seed": seed, "rc": rc, "cpu_seconds": cpu,
         "peak_rss_bytes": rss, "wall_seconds": wall, **usage, "command": " ".join(command)}
  if rc != 0:
    return out
  run_dir = workdir / FLAGS.objective / f"seed{seed}"
  results = json.loads((run_dir / "results.json").read_text())
  out["steps"] = [{k: r[k] for k in ("step", "loss", *_TERMS) if k in r}
                  for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                  if r.get("kind") == "train"]
  out["history"] = [{"epoch": h["epoch"], "validation": h["validation"], "test": h["test"]}
                    for h in results["history"]]
  rows = FLAGS.texts_per_batch * (1 if FLAGS.objective == "ce" else 2)  # + the views
  out["seconds_per_step"] = (rows / results["sequences_per_second"]
                             if results.get("sequences_per_second") else None)
  out["compiled_train_shapes"] = results["compiled_train_shapes"]
  stamps = _epoch_times(workdir / "train.log")
  out["epoch_seconds"] = [b - a for a, b in zip(stamps, stamps[1:])]  # epochs 2.. (1 core)
  return out


def run_torch(head: str, seed: int, root: pathlib.Path) -> dict:
  spec = {"head": head, "seed": seed, "dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir,
          "objective": FLAGS.objective,
          "epochs": FLAGS.epochs, "texts_per_batch": FLAGS.texts_per_batch,
          "max_length": FLAGS.max_length, "learning_rate": FLAGS.learning_rate,
          "eval_batch_size": FLAGS.eval_batch_size,
          "max_train_examples": FLAGS.max_train_examples}
  result_path = root / f"torch_{head}_seed{seed}.json"
  result_path.unlink(missing_ok=True)
  command = [sys.executable, "-m", "benchmarks.parity_benchmark",
             f"--child={json.dumps({**spec, 'output': str(result_path)})}"]
  rc, cpu, rss, wall, usage = _run_child(command, _child_env(), root / f"torch_{head}_seed{seed}.log")
  out = {"system": f"torch:{head}", "seed": seed, "rc": rc, "cpu_seconds": cpu,
         "peak_rss_bytes": rss, "wall_seconds": wall, **usage}
  if rc == 0:
    child = json.loads(result_path.read_text())
    out.update(history=child["history"], seconds_per_step=child["seconds_per_step"],
               epoch_seconds=[h["epoch_cpu_seconds"] for h in child["history"][1:]
                              if "epoch_cpu_seconds" in h], steps=child.get("steps", []))
  return out


def run_lockstep(root: pathlib.Path) -> dict:
  """`lockstep` on the recipe's first --lockstep_steps batches (seed 0's data order)."""
  import torch  # pylint: disable=g-import-not-at-top

  from lcl_jax.models import pretrained  # pylint: disable=g-import-not-at-top
  from lcl_jax.train import data_pipeline  # pylint: disable=g-import-not-at-top
  from lcl_jax.train.config import TrainConfig  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(1)
  os.sched_setaffinity(0, {FLAGS.core})
  cfg = TrainConfig(dataset=FLAGS.dataset, objective="ce", encoder="minilm",
                    data_dir=FLAGS.data_dir, baseline_views="texts",
                    texts_per_batch=FLAGS.texts_per_batch, max_length=FLAGS.max_length,
                    max_train_examples=FLAGS.max_train_examples, workdir=str(root / "lockstep"),
                    epochs=FLAGS.epochs).resolved()
  data = data_pipeline.prepare(cfg, num_devices=1)
  batches = [b for b in data.train_batches(0) if b["valid"].all()][:FLAGS.lockstep_steps]
  return lockstep(str(pretrained.minilm_checkpoint_dir()), batches, data.num_classes,
                  learning_rate=FLAGS.learning_rate,
                  total_steps=data.steps_per_epoch * FLAGS.epochs)


_TERMS = ("ce", "weighting_ce", "contrastive")


def loss_curves(runs: list[dict], every: int = 10) -> str:
  """The training losses of each system at the steps lcl_jax logged (the same batches in
  both), side by side: one row per logged step, `total (ce / [weighting_ce /]
  contrastive)` in nats, seed by seed."""
  lines = []
  for seed in dict.fromkeys(r["seed"] for r in runs):
    ok = [r for r in runs if r["seed"] == seed and r["rc"] == 0 and r.get("steps")]
    if len(ok) < 2:
      continue
    by_step = [{s["step"]: s for s in r["steps"]} for r in ok]
    logged = [s["step"] for s in ok[0]["steps"] if s["step"] % every == 0]
    lines.append(f"seed {seed}: loss (" + " / ".join(t for t in _TERMS if t in ok[0]["steps"][0])
                 + ") at each logged step")
    lines.append("| step | " + " | ".join(r["system"] for r in ok) + " |")
    lines.append("|---|" + "---|" * len(ok))
    for step in logged:
      cells = []
      for steps in by_step:
        rec = steps.get(step)
        cells.append("-" if rec is None else f"{rec['loss']:.4f} (" + " / ".join(
            f"{rec[t]:.3f}" for t in _TERMS if t in rec) + ")")
      lines.append(f"| {step} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _mean(values):
  values = [v for v in values if v is not None]
  return statistics.mean(values) if values else float("nan")


def summarise(runs: list[dict]) -> str:
  lines = []
  systems = list(dict.fromkeys(r["system"] for r in runs))
  lines.append("| system | seed | test acc / macro-F1 after each epoch | CPU s | peak RSS GB "
               "| s/step (steady) | CPU s per steady epoch |")
  lines.append("|---|---|---|---|---|---|---|")
  for r in runs:
    if r["rc"] != 0:
      lines.append(f"| {r['system']} | {r['seed']} | FAILED rc={r['rc']} | | | | |")
      continue
    epochs = "; ".join(f"{100 * h['test']['accuracy']:.2f} / {100 * h['test']['macro_f1']:.2f}"
                       for h in r["history"])
    lines.append(f"| {r['system']} | {r['seed']} | {epochs} | {r['cpu_seconds']:.0f} | "
                 f"{r['peak_rss_bytes'] / 1e9:.2f} | {r['seconds_per_step'] or float('nan'):.3f} | "
                 f"{_mean(r['epoch_seconds']):.0f} |")
  lines.append("")
  lines.append("| system (mean over seeds) | final test acc | final macro-F1 | CPU s | peak RSS GB "
               "| s/step | CPU s per steady epoch |")
  lines.append("|---|---|---|---|---|---|---|")
  means = {}
  for system in systems:
    ok = [r for r in runs if r["system"] == system and r["rc"] == 0]
    if not ok:
      continue
    accs = [100 * r["history"][-1]["test"]["accuracy"] for r in ok]
    m = {"acc": _mean(accs), "acc_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
         "f1": _mean([100 * r["history"][-1]["test"]["macro_f1"] for r in ok]),
         "cpu": _mean([r["cpu_seconds"] for r in ok]),
         "rss": _mean([r["peak_rss_bytes"] for r in ok]) / 1e9,
         "step": _mean([r["seconds_per_step"] for r in ok]),
         "epoch": _mean([_mean(r["epoch_seconds"]) for r in ok])}
    means[system] = m
    lines.append(f"| {system} (n={len(ok)}) | {m['acc']:.2f} ± {m['acc_sd']:.2f} | {m['f1']:.2f} | "
                 f"{m['cpu']:.0f} | {m['rss']:.2f} | {m['step']:.3f} | {m['epoch']:.0f} |")
  for head in ("hf", "paper"):
    ours, theirs = means.get(f"lcl_jax:{head}"), means.get(f"torch:{head}")
    if ours and theirs:
      lines.append(f"lcl_jax:{head} / torch:{head}: accuracy {ours['acc'] - theirs['acc']:+.2f} "
                   f"points, CPU {ours['cpu'] / theirs['cpu']:.2f}x, peak RSS "
                   f"{ours['rss'] / theirs['rss']:.2f}x, s/step {ours['step'] / theirs['step']:.2f}x, "
                   f"steady epoch {ours['epoch'] / theirs['epoch']:.2f}x")
  return "\n".join(lines)


def main(argv):
  del argv
  if FLAGS.child:
    spec = json.loads(FLAGS.child)
    result = (torch_loop if spec.get("objective", "ce") == "ce" else contrastive_loop)(spec)
    pathlib.Path(spec["output"]).write_text(json.dumps(result))
    return 0
  root = pathlib.Path(FLAGS.workdir)
  root.mkdir(parents=True, exist_ok=True)
  if FLAGS.lockstep_steps:
    print(json.dumps(run_lockstep(root), indent=1))
    return 0
  bad = [s for s in FLAGS.systems
         if s not in ("lcl_jax:hf", "lcl_jax:paper", "torch:hf", "torch:paper")]
  if bad:
    raise app.UsageError(f"--systems: unknown {bad}")
  if FLAGS.objective != "ce" and any(not s.endswith(":hf") for s in FLAGS.systems):
    raise app.UsageError("--objective=scl/lcl compares Φ with the checkpoint's head: "
                         "--systems=lcl_jax:hf,torch:hf")
  import platform  # pylint: disable=g-import-not-at-top
  print(f"parity benchmark: {RECIPE_NOTE.format(**{k: FLAGS[k].value for k in ('dataset', 'objective', 'texts_per_batch', 'max_length', 'learning_rate', 'epochs')})}; "
        f"core {FLAGS.core}, cache {FLAGS.cache}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
  runs = []
  for seed in map(int, FLAGS.seeds):
    for system in FLAGS.systems:
      kind, head = system.split(":")
      run = (run_lcl_jax if kind == "lcl_jax" else run_torch)(head, seed, root)
      runs.append(run)
      print(json.dumps({k: v for k, v in run.items() if k != "command"}), flush=True)
      if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(runs, indent=1))
  print(summarise(runs))
  if FLAGS.objective != "ce":
    print(loss_curves(runs))
  return 0


if __name__ == "__main__":
  app.run(main)
