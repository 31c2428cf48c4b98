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
"""
from __future__ import annotations

import pathlib
import statistics
import time

from absl import app, flags

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
        f"{60 * len(texts) / median:,.0f} texts/minute")


if __name__ == "__main__":
  app.run(main)
