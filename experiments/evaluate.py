r"""Evaluate a fine-tuned run on a dataset split or on a labelled file.

  python -m experiments.evaluate --run=runs/emoint/lcl/seed0 --dataset=emoint \
    --split=test --data_dir=../shared/data
  python -m experiments.evaluate --run=runs/emoint/lcl/seed0 --input=labelled.csv \
    --text_column=text --label_column=label

Computes the metrics training reports (accuracy, weighted and macro F1; multi-label
micro/macro P/R/F1 at the run's thresholds) with the same code, plus per-class
precision/recall/F1 (scikit-learn) and the confusion matrix, for each network of the run
(Φ, and LCL's Ψ). Writes metrics.json and report.md into --output_dir (default
<run>/evaluation/<dataset>_<split> or <run>/evaluation/<input file name>).

The default --dataset/--split is the run's own test split, with the run's
max_eval_examples subset if it had one: the numbers then equal the run's results.json.

--embed_mix (train / paraphrase / t5, the trainer's flags of the same names) also
evaluates Φ with seed 004's embedding mixing (lcl_jax.train.mixing); metrics.json then
has "mixed" (the same entries as "networks", for Φ) and the candidates are written to
<output_dir>/mixed_candidates.tsv (its split column: --split, or 'input' for --input).
--embed_mix=train searches the run's training texts
(its --max_train_examples subset; without --concat_expansion rows).
"""
from __future__ import annotations

import dataclasses
import pathlib

from absl import app, flags

from lcl_jax.studies import cli
from lcl_jax.train import run_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "A finished run directory or an --export_hf folder.")
flags.DEFINE_string("dataset", None, "Dataset name (default: the run's).")
flags.DEFINE_string("split", "test", "Split: train, validation or test.")
flags.DEFINE_string("data_dir", None,
                    "Folder with the release files (default: the run's, else $LCL_DATA_DIR).")
flags.DEFINE_integer("max_examples", None,
                     "Evaluate a fixed random subset of this size (default: the run's "
                     "max_eval_examples, so a smoke run is evaluated on its own subset; "
                     "0: the whole split).", lower_bound=0)
flags.DEFINE_string("input", None, "A labelled file instead: .tsv, .csv or .jsonl.")
flags.DEFINE_string("text_column", "text", "The text column/key of --input.")
flags.DEFINE_string("label_column", "label",
                    "The label column/key of --input: a class name or id (multi-label: "
                    "names separated by commas).")
flags.DEFINE_string("output_dir", None, "Where metrics.json and report.md go.")
flags.DEFINE_integer("batch_size", None, "Texts per batch (default: the run's).", lower_bound=1)
run_flags.define_embed_mix_flags()
flags.mark_flag_as_required("run")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.input and FLAGS["dataset"].present:
    raise app.UsageError("give --dataset/--split or --input, not both")
  cli.setup_logging()
  from lcl_jax.inference import use
  from lcl_jax import inference
  from lcl_jax.train import mixing
  from lcl_jax.train.config import TrainConfig

  settings = mixing.MixSettings(
      embed_mix=FLAGS.embed_mix, embed_mix_weight=FLAGS.embed_mix_weight,
      embed_mix_similarity=FLAGS.embed_mix_similarity,
      paraphrase_file=FLAGS.paraphrase_file, t5_checkpoint=FLAGS.t5_checkpoint)
  try:
    TrainConfig(**dataclasses.asdict(settings)).validate()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  predictor = inference.Predictor.load(FLAGS.run, batch_size=FLAGS.batch_size)
  run = pathlib.Path(FLAGS.run)
  if FLAGS.input:
    records = use.read_records(FLAGS.input, text_column=FLAGS.text_column,
                               label_column=FLAGS.label_column)
    labels = use.encode_labels(records.labels, records.lines, predictor.label_names,
                               multilabel=predictor.multilabel, where=f"--input {FLAGS.input}")
    texts, data = records.texts, f"file {FLAGS.input}"
    name = pathlib.Path(FLAGS.input).stem
  else:
    texts, labels, data, name = _dataset_split(predictor)
  output_dir = pathlib.Path(FLAGS.output_dir or run / "evaluation" / name)
  probabilities = predictor.probabilities(texts)
  report = {
      "model": str(predictor.source), "model_info": predictor.info, "data": data,
      "num_examples": len(texts), "label_names": list(predictor.label_names),
      "multilabel": predictor.multilabel, "command": cli.command_line(),
      "thresholds": None if predictor.thresholds is None else predictor.thresholds.tolist(),
      "networks": use.evaluate(labels, probabilities, predictor.label_names,
                               multilabel=predictor.multilabel,
                               thresholds=predictor.thresholds),
  }
  if settings.enabled:
    try:
      mixed = _mixed(settings, predictor, texts, "input" if FLAGS.input else FLAGS.split)
    except (ValueError, ImportError) as e:  # a bad paraphrase file / T5 folder / no bert-score
      raise app.UsageError(str(e)) from None
    report["mixed"] = {**settings.describe(), **use.evaluate(
        labels, {"primary": mixed.probabilities}, predictor.label_names,
        multilabel=predictor.multilabel, thresholds=predictor.thresholds)}
  from lcl_jax.train.checkpoint import write_atomic, write_json_atomic
  if settings.enabled:
    mixing.write_candidates(output_dir / "mixed_candidates.tsv",
                            "input" if FLAGS.input else FLAGS.split, texts,
                            mixed.candidates,
                            {} if mixed.similarity is None
                            else {"similarity": mixed.similarity})
  write_json_atomic(output_dir / "metrics.json", report)
  markdown = use.evaluation_markdown(report)
  write_atomic(output_dir / "report.md", markdown)
  for network, entry in report["networks"].items():
    shown = "  ".join(f"{k}={v:.4f}" if k == "loss" else f"{k}={100 * v:.2f}"
                      for k, v in entry["metrics"].items())
    print(f"{network}: {shown}")
  if settings.enabled:
    shown = "  ".join(f"{k}={v:.4f}" if k == "loss" else f"{k}={100 * v:.2f}"
                      for k, v in report["mixed"]["primary"]["metrics"].items())
    print(f"primary, embed_mix={settings.embed_mix} w={settings.embed_mix_weight:g}: {shown}")
  print(f"report: {output_dir / 'report.md'}\nmetrics: {output_dir / 'metrics.json'}")


def _mixed(settings, predictor, texts, name):
  """Φ's embedding-mixed evaluation of `texts` (`mixing.evaluate_mixed`): a
  `mixing.MixedSplit` with its probabilities."""
  from lcl_jax import data as data_lib
  from lcl_jax.train import data_pipeline, mixing

  mixing.check_settings(settings, {name: texts})
  info = predictor.info
  train_texts = None
  if settings.embed_mix == "train":
    if not info.get("dataset"):
      raise app.UsageError("--embed_mix=train needs the run's training texts; this model "
                           "does not record its dataset")
    train = data_lib.load_split(info["dataset"], "train", data_dir=FLAGS.data_dir
                                or info.get("data_dir"), classes=info.get("classes"))
    train_texts = list(data_pipeline.fixed_subset(train, info.get("max_train_examples")).texts)
  return mixing.evaluate_mixed(settings, predictor.mixer(), {name: texts},
                               multilabel=predictor.multilabel, encoder=info.get("encoder"),
                               train_texts=train_texts, max_length=predictor.max_length)[name]


def _dataset_split(predictor):
  """Texts, labels, a description and a folder name of --dataset/--split."""
  from lcl_jax import data as data_lib
  from lcl_jax.train import data_pipeline

  info = predictor.info
  dataset = FLAGS.dataset or info.get("dataset")
  if not dataset:
    raise app.UsageError("--dataset is needed (the model does not record its dataset)")
  if dataset not in data_lib.DATASETS:
    raise app.UsageError(f"--dataset={dataset!r} is not a known dataset; known: "
                         f"{', '.join(data_lib.DATASETS)}")
  same = dataset == info.get("dataset")
  split = data_lib.load_split(dataset, FLAGS.split,
                              data_dir=FLAGS.data_dir or (info.get("data_dir") if same else None),
                              classes=info.get("classes") if same else None)
  if tuple(split.label_names) != tuple(predictor.label_names):
    raise app.UsageError(f"{dataset} has the labels {list(split.label_names)}; the model "
                         f"predicts {list(predictor.label_names)}")
  limit = FLAGS.max_examples
  if limit is None:
    limit = info.get("max_eval_examples") if same else None
  split = data_pipeline.fixed_subset(split, limit or None)
  data = f"{dataset} {split.split}" + (f" (fixed subset of {limit})" if limit else "")
  return list(split.texts), split.labels, data, f"{dataset}_{split.split}"


if __name__ == "__main__":
  cli.run(main)
