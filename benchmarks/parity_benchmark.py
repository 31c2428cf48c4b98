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
import resource
import shutil
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Release data folder (default $LCL_DATA_DIR).")
flags.DEFINE_string("dataset", "emoint", "Single-label dataset both systems train on.")
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

RECIPE_NOTE = ("MiniLM, {dataset} full train, CE on texts, batch {texts_per_batch}, "
               "max_length {max_length}, AdamW {learning_rate} linear to 0, eps 1e-6, wd 0.01 "
               "(not biases/LayerNorm), clip 1.0, dropout 0.1, {epochs} epochs, 1 core")


# ----------------------------------------------------------------------------------------
# The PyTorch + transformers loop (runs in a child process).

def torch_loop(spec: dict) -> dict:
  """A plain fine-tuning loop; returns per-epoch metrics and timings (seconds)."""
  import numpy as np
  import torch
  from sklearn.metrics import accuracy_score, f1_score
  from transformers import (AutoModel, AutoModelForSequenceClassification, AutoTokenizer,
                            get_linear_schedule_with_warmup)

  from lcl_jax import data as data_lib
  from lcl_jax.models import pretrained
  from lcl_jax.train import data_pipeline

  torch.set_num_threads(1)
  torch.manual_seed(spec["seed"])
  checkpoint = str(pretrained.minilm_checkpoint_dir())
  splits = {s: data_lib.load_split(spec["dataset"], s, data_dir=spec["data_dir"])
            for s in ("train", "validation", "test")}
  splits["train"] = data_pipeline.fixed_subset(splits["train"], spec["max_train_examples"])
  num_labels = splits["train"].num_classes
  tokenizer = AutoTokenizer.from_pretrained(checkpoint)
  encoded = {s: tokenizer(list(split.texts), truncation=True, max_length=spec["max_length"])
             for s, split in splits.items()}

  if spec["head"] == "hf":
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=num_labels)
  else:  # the LCL release's head on the bare encoder (its pooler unused)
    class PaperHeadModel(torch.nn.Module):
      def __init__(self):
        super().__init__()
        self.bert = AutoModel.from_pretrained(checkpoint, add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        self.pooler_fc = torch.nn.Linear(hidden, hidden)
        self.label = torch.nn.Linear(hidden, num_labels)
        self.dropout = torch.nn.Dropout(0.1)
        for layer in (self.pooler_fc, self.label):
          torch.nn.init.normal_(layer.weight, std=0.02)
          torch.nn.init.zeros_(layer.bias)

      def forward(self, input_ids, attention_mask, token_type_ids):
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state[:, 0]
        x = torch.relu(self.dropout(self.pooler_fc(cls)))
        return self.dropout(self.label(x))
    model = PaperHeadModel()

  def logits_of(batch):
    out = model(**batch)
    return out.logits if hasattr(out, "logits") else out

  def batch_of(split, index):
    rows = [{k: encoded[split][k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}
            for i in index]
    padded = tokenizer.pad(rows, return_tensors="pt")  # dynamic padding to the longest row
    return {k: padded[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

  no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
  groups = [{"params": [p for n, p in model.named_parameters() if not no_decay(n)],
             "weight_decay": 0.01},
            {"params": [p for n, p in model.named_parameters() if no_decay(n)],
             "weight_decay": 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=spec["learning_rate"], eps=1e-6)
  n_train = len(splits["train"])
  per_epoch = -(-n_train // spec["texts_per_batch"])
  scheduler = get_linear_schedule_with_warmup(optimizer, 0, per_epoch * spec["epochs"])
  labels = {s: torch.as_tensor(np.asarray(split.labels), dtype=torch.long)
            for s, split in splits.items()}
  generator = torch.Generator().manual_seed(spec["seed"])

  def evaluate(split):
    model.eval()
    predictions = []
    with torch.no_grad():
      for start in range(0, len(splits[split]), spec["eval_batch_size"]):
        index = range(start, min(start + spec["eval_batch_size"], len(splits[split])))
        predictions.append(logits_of(batch_of(split, index)).argmax(-1))
    model.train()
    y_pred, y_true = torch.cat(predictions).numpy(), labels[split].numpy()
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}

  history, step_seconds = [], []
  model.train()
  for epoch in range(spec["epochs"]):
    cpu0 = time.process_time()
    order = torch.randperm(n_train, generator=generator).tolist()
    for start in range(0, n_train, spec["texts_per_batch"]):
      t0 = time.perf_counter()
      index = order[start:start + spec["texts_per_batch"]]
      loss = torch.nn.functional.cross_entropy(logits_of(batch_of("train", index)),
                                               labels["train"][index])
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      scheduler.step()
      optimizer.zero_grad()
      step_seconds.append(time.perf_counter() - t0)
    record = {"epoch": epoch + 1, "validation": evaluate("validation"), "test": evaluate("test"),
              "epoch_cpu_seconds": time.process_time() - cpu0}
    history.append(record)
  return {"history": history, "steps_per_epoch": per_epoch,
          "seconds_per_step": statistics.median(step_seconds[per_epoch:] or step_seconds)}


def lockstep(checkpoint: str, batches: list[dict], num_labels: int, *, learning_rate: float,
             total_steps: int, seed: int = 0) -> dict:
  """The same CE training steps in lcl_jax (`--head=hf`) and in the PyTorch loop.

  Both start from the same weights (the checkpoint; lcl_jax's new classifier layer copied
  into `BertForSequenceClassification`), take the same `batches` (data-pipeline dicts,
  all rows valid) with dropout off in both, and the recipe's AdamW (eps 1e-6, decay 0.01
  except biases/LayerNorm, clip 1.0, linear decay over `total_steps`). Any difference in
  the model, the loss, the optimiser, the decay mask, clipping or the schedule shows up
  as diverging losses. Returns the per-step losses of both, their largest relative
  difference and the largest absolute difference of the classifier and first-layer query
  weights at the end. Seed, order and dropout masks are the only things it leaves out.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  from lcl_jax.train import objectives, optim, steps  # pylint: disable=g-import-not-at-top

  spec = objectives.get_spec("ce")
  modules, params = objectives.build_networks(
      spec, encoder=checkpoint, weighting_encoder=checkpoint, num_classes=num_labels,
      rng=jax.random.key(seed), primary_head="hf")
  optimizer = optim.make_optimizer(params, learning_rate=learning_rate,
                                   total_steps=total_steps, eps=1e-6)
  train_step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
      dropout_key=jax.random.key(seed), use_dropout=False))
  state = steps.init_state(params, optimizer, None)

  model = transformers.BertForSequenceClassification.from_pretrained(checkpoint,
                                                                     num_labels=num_labels)
  head = params["primary"]["head"]["classifier"]
  with torch.no_grad():
    model.classifier.weight.copy_(torch.tensor(np.array(head["kernel"]).T))
    model.classifier.bias.copy_(torch.tensor(np.array(head["bias"])))
  model.eval()  # dropout off; gradients flow as usual
  no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
  torch_optimizer = torch.optim.AdamW(
      [{"params": [p for n, p in model.named_parameters() if not no_decay(n)],
        "weight_decay": 0.01},
       {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0}],
      lr=learning_rate, eps=1e-6)
  scheduler = transformers.get_linear_schedule_with_warmup(torch_optimizer, 0, total_steps)
  ours, theirs = [], []
  for batch in batches:
    if not np.all(batch["valid"]):
      raise ValueError("lockstep needs batches without padding rows")
    state, metrics = train_step(state, batch)
    ours.append(float(metrics["loss"]))
    logits = model(input_ids=torch.tensor(batch["input_ids"]).long(),
                   attention_mask=torch.tensor(batch["attention_mask"]).long(),
                   token_type_ids=torch.tensor(batch["token_type_ids"]).long()).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(batch["labels"]).long())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    torch_optimizer.step()
    scheduler.step()
    torch_optimizer.zero_grad()
    theirs.append(float(loss.detach()))
  final = state["params"]["primary"]
  query = final["encoder"]["encoder"]["layer"]["0"]["attention"]["self"]["query"]["kernel"]
  diffs = {
      "classifier": float(np.abs(np.asarray(final["head"]["classifier"]["kernel"])
                                 - model.classifier.weight.detach().numpy().T).max()),
      "layer0_query": float(np.abs(np.asarray(query) - model.bert.encoder.layer[0]
                                   .attention.self.query.weight.detach().numpy().T).max()),
  }
  relative = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
  return {"losses_lcl_jax": ours, "losses_torch": theirs, "max_relative_loss_difference": relative,
          "max_abs_param_difference": diffs}


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
  command = [sys.executable, "-m", "experiments.train", f"--dataset={FLAGS.dataset}",
             "--objective=ce", "--encoder=minilm", "--baseline_views=texts",
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
  results = json.loads((workdir / "ce" / f"seed{seed}" / "results.json").read_text())
  out["history"] = [{"epoch": h["epoch"], "validation": h["validation"], "test": h["test"]}
                    for h in results["history"]]
  out["seconds_per_step"] = FLAGS.texts_per_batch / results["sequences_per_second"]
  out["compiled_train_shapes"] = results["compiled_train_shapes"]
  stamps = _epoch_times(workdir / "train.log")
  out["epoch_seconds"] = [b - a for a, b in zip(stamps, stamps[1:])]  # epochs 2.. (1 core)
  return out


def run_torch(head: str, seed: int, root: pathlib.Path) -> dict:
  spec = {"head": head, "seed": seed, "dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir,
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
               epoch_seconds=[h["epoch_cpu_seconds"] for h in child["history"][1:]])
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
                 f"{r['peak_rss_bytes'] / 1e9:.2f} | {r['seconds_per_step']:.3f} | "
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
    result = torch_loop(spec)
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
  import platform  # pylint: disable=g-import-not-at-top
  print(f"parity benchmark: {RECIPE_NOTE.format(**{k: FLAGS[k].value for k in ('dataset', 'texts_per_batch', 'max_length', 'learning_rate', 'epochs')})}; "
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
  return 0


if __name__ == "__main__":
  app.run(main)
