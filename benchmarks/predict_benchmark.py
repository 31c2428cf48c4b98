r"""Texts per minute of `experiments.predict`'s path (tokenise, batch, jitted eval step).

  python -m benchmarks.predict_benchmark                       # MiniLM, synthetic texts
  python -m benchmarks.predict_benchmark --dataset=emoint --data_dir=../shared/data
  python -m benchmarks.predict_benchmark --run=runs/synthetic/ce/seed0

Without --run it builds an untrained MiniLM classifier (the paper's Φ head; a trained
one costs exactly the same) and wraps it in `inference.Predictor` with the trainer's
defaults (eval batch 64, buckets 32/64/128, max length 128). It classifies the texts of
--dataset's test split (repeated up to --num_texts) once to compile every bucket, then
--repeats times, and prints texts/minute for the timed passes and for the first pass
(compilation included), with the mean tokenised length.

  python -m benchmarks.predict_benchmark --run=<run>/export/primary --pipeline --calls=3

--pipeline (an exported folder transformers can load: `bert_ce`, or Ψ on ELECTRA) also
times `transformers.pipeline("text-classification")` on the same folder and texts in the
same process (torch on the CPU, the same batch size, truncation at the run's max length),
after one warm-up pass, and prints both texts/s. --calls=N runs `python -m
experiments.predict --run=<--calls_run or --run> --text=...` N times, each a fresh interpreter (the
first may fill the compilation cache; the later ones are warm), and prints each call's
wall and CPU seconds (user + system, from the child's rusage).
"""
from __future__ import annotations

import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from benchmarks.machine import describe_machine

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "A finished run / exported folder (default: untrained MiniLM).")
flags.DEFINE_string("encoder", "minilm", "Encoder when no --run is given.")
flags.DEFINE_enum("objective", "ce", ["ce", "lcl", "bert_ce"],
                  "Networks when no --run is given (lcl: Φ and Ψ, twice the work).")
flags.DEFINE_string("dataset", "synthetic", "Texts: this dataset's test split.")
flags.DEFINE_string("data_dir", None, "Release files (default $LCL_DATA_DIR).")
flags.DEFINE_integer("num_texts", 2000, "Texts per pass.")
flags.DEFINE_integer("batch_size", 64, "Texts per batch.")
flags.DEFINE_integer("repeats", 3, "Timed passes after the compiling one.")
flags.DEFINE_bool("pipeline", False, "Also time transformers.pipeline('text-classification') "
                  "on --run (an exported folder it can load).")
flags.DEFINE_integer("calls", 0, "Time this many `python -m experiments.predict --run=<--run> "
                     "--text=...` calls (fresh interpreters).")
flags.DEFINE_string("calls_run", None, "The run --calls predicts with (default --run).")
flags.DEFINE_string("compare_repo", None, "With --calls: also time the predict binary of "
                    "this checkout (e.g. an older commit), its calls alternating with ours.")

REPO = pathlib.Path(__file__).resolve().parents[1]


def time_predict_calls(run: str, calls: int, *, repo: pathlib.Path = REPO,
                       text: str = "the parcel arrived broken and nobody answers") -> list[dict]:
  """`calls` runs of `repo`'s predict binary on one text: `{'wall_s', 'cpu_s'}` each
  (wall seconds of the child; CPU = user + system seconds of the child, all threads)."""
  env = dict(os.environ, PYTHONPATH=str(repo))
  rows = []
  for _ in range(calls):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "experiments.predict", f"--run={run}",
                    f"--text={text}"], check=True, env=env, capture_output=True, cwd=repo)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows.append({"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime)
                 + (after.ru_stime - before.ru_stime)})
  return rows


def pipeline_texts_per_second(folder: str, texts: list[str], *, batch_size: int,
                              max_length: int, repeats: int) -> tuple[float, list]:
  """texts/s of `transformers.pipeline('text-classification')` on `folder` (median of
  `repeats` passes after a warm-up pass) and its top label per text."""
  import transformers  # pylint: disable=g-import-not-at-top  (torch only with --pipeline)
  classify = transformers.pipeline("text-classification", model=folder, device=-1)
  kwargs = dict(batch_size=batch_size, truncation=True, max_length=max_length)
  outputs = classify(texts, **kwargs)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    classify(texts, **kwargs)
    times.append(time.perf_counter() - start)
  return len(texts) / statistics.median(times), [o["label"] for o in outputs]


def main(argv):
  del argv
  import jax
  import numpy as np

  from lcl_jax.data import load_split
  from lcl_jax.models import pretrained
  from lcl_jax import inference
  from lcl_jax.train import objectives
  from lcl_jax.train.config import TrainConfig
  from lcl_jax.train.data_pipeline import resolve_checkpoint

  split = load_split(FLAGS.dataset, "test", data_dir=FLAGS.data_dir)
  texts = [split.texts[i % len(split)] for i in range(FLAGS.num_texts)]
  if FLAGS.run:
    predictor = inference.Predictor.load(FLAGS.run, batch_size=FLAGS.batch_size)
  else:
    defaults = TrainConfig()
    modules, params = objectives.build_networks(
        objectives.get_spec(FLAGS.objective), encoder=FLAGS.encoder,
        weighting_encoder=FLAGS.encoder, num_classes=split.num_classes,
        rng=jax.random.key(0))
    predictor = inference.Predictor(
        modules=modules, params=jax.device_get(params),
        tokenizer=pretrained.load_tokenizer(resolve_checkpoint(FLAGS.encoder)),
        label_names=tuple(split.label_names), multilabel=False, thresholds=None,
        max_length=defaults.max_length, length_buckets=tuple(defaults.length_buckets),
        batch_size=FLAGS.batch_size, source=pathlib.Path(resolve_checkpoint(FLAGS.encoder)),
        info={"kind": "benchmark"})
  lengths = [len(ids) for ids in predictor.tokenizer(texts[:500], truncation=True,
                                                      max_length=predictor.max_length)["input_ids"]]
  if (FLAGS.calls or FLAGS.pipeline) and not FLAGS.run:
    raise app.UsageError("--calls and --pipeline need --run")
  print(describe_machine(torch=FLAGS.pipeline))
  print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}, jax {jax.__version__}; "
        f"networks {list(predictor.networks)}, {len(texts)} texts of {FLAGS.dataset} "
        f"(mean {np.mean(lengths):.1f} tokens), batch {predictor.batch_size}")
  start = time.perf_counter()
  predictor.predict(texts)
  first = time.perf_counter() - start
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    predictor.predict(texts)
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  print(f"first pass (compiles each bucket): {first:.1f} s = {60 * len(texts) / first:,.0f} "
        "texts/minute")
  print(f"timed passes: median {median:.1f} s of {[round(t, 1) for t in times]} = "
        f"{60 * len(texts) / median:,.0f} texts/minute = {len(texts) / median:,.1f} texts/s")
  if FLAGS.pipeline:
    ours = [p.labels[0] for p in predictor.predict(texts)]
    rate, theirs = pipeline_texts_per_second(
        FLAGS.run, texts, batch_size=predictor.batch_size, max_length=predictor.max_length,
        repeats=FLAGS.repeats)
    agree = sum(a == b for a, b in zip(ours, theirs)) / len(texts)
    print(f"transformers.pipeline on the same folder: {rate:,.1f} texts/s "
          f"(lcl_jax / pipeline = {len(texts) / median / rate:.2f}x; same top label on "
          f"{agree:.1%} of the texts)")
  repos = [REPO] + ([pathlib.Path(FLAGS.compare_repo).resolve()] if FLAGS.compare_repo else [])
  for i in range(FLAGS.calls):
    for repo in repos:
      (row,) = time_predict_calls(FLAGS.calls_run or FLAGS.run, 1, repo=repo)
      print(f"experiments.predict ({repo}) call {i + 1}: {row['wall_s']:.2f} s wall, "
            f"{row['cpu_s']:.2f} CPU-s")


if __name__ == "__main__":
  app.run(main)
