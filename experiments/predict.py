r"""Classify text with a fine-tuned run (or a folder written by --export_hf).

  python -m experiments.predict --run=runs/synthetic/lcl/seed0 \
    --text="the parcel arrived broken and nobody answers" --top_k=3
  python -m experiments.predict --run=runs/synthetic/lcl/seed0 --input=texts.csv \
    --text_column=text --output=predictions.jsonl

Loads the run's best-validation parameters, tokenizer and batching settings, runs the
trainer's own jitted eval step over static-shape batches and prints each text's labels
with their probabilities: the --top_k most probable classes, or for a multi-label run
every class above the run's thresholds. --output writes every prediction (JSONL or CSV,
with all class probabilities). Inputs: .txt (a text per line), .tsv / .csv (a header
with --text_column), .jsonl (objects with key --text_column).
"""
from __future__ import annotations

import gc
import sys
import time

from absl import app, flags

from lcl_jax.studies import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "A finished run directory (<workdir>/<objective>/seed<k>) "
                    "or a folder written by --export_hf (<run>/export/<network>).")
flags.DEFINE_multi_string("text", [], "A text to classify (repeat the flag for several).")
flags.DEFINE_string("input", None, "A file of texts: .txt, .tsv, .csv or .jsonl.")
flags.DEFINE_string("text_column", "text", "The text's column (.tsv/.csv) or key (.jsonl).")
flags.DEFINE_string("output", None, "Write the predictions here (.jsonl or .csv).")
flags.DEFINE_integer("top_k", 1, "Labels shown per text (single-label runs).", lower_bound=1)
flags.DEFINE_enum("network", None, ["primary", "weighting"],
                  "Which network of an LCL run: primary (Φ, the reported one; default) or "
                  "weighting (Ψ).")
flags.DEFINE_integer("batch_size", None, "Texts per batch (default: the run's "
                     "eval_batch_size).", lower_bound=1)
flags.DEFINE_integer("show", 20, "With --output: texts printed to the console.")
flags.mark_flag_as_required("run")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(FLAGS.text) == bool(FLAGS.input):
    raise app.UsageError("give either --text (one or more) or --input=<file>")
  cli.setup_logging()
  # Start-up time (issue 19 item 6): the imports and the model load below create a few
  # million long-lived objects, and the collector's passes over them while they are made
  # free nothing (~0.5 CPU-s); it runs again once the model is loaded.
  gc.disable()
  try:
    # Imported here, not at the top: --help and flag errors answer without jax.
    from lcl_jax.inference import use  # pylint: disable=g-import-not-at-top
    from lcl_jax import inference  # pylint: disable=g-import-not-at-top

    if FLAGS.input:
      records = use.read_records(FLAGS.input, text_column=FLAGS.text_column)
    else:
      records = use.text_records(FLAGS.text)
    if FLAGS.output:
      use.check_output_path(FLAGS.output)  # a bad name fails before any work
    predictor = inference.Predictor.load(FLAGS.run, batch_size=FLAGS.batch_size)
  finally:
    gc.enable()
  start = time.perf_counter()
  predictions = predictor.predict(records.texts, top_k=FLAGS.top_k, network=FLAGS.network)
  seconds = time.perf_counter() - start
  shown = predictions if not FLAGS.output else predictions[:FLAGS.show]
  for text, prediction in zip(records.texts, shown):
    print(use.format_prediction(text, prediction))
  if FLAGS.output:
    path = use.write_predictions(FLAGS.output, records, predictions, predictor.label_names)
    more = len(predictions) - len(shown)
    print(f"{len(predictions)} predictions written to {path}"
          + (f" ({more} not shown)" if more > 0 else ""))
  print(f"({len(predictions)} texts in {seconds:.1f} s incl. compilation)", file=sys.stderr)
  # The interpreter's collections at exit then skip every object made so far (the
  # modules, the model): ~0.6 s of the exit of a one-text call.
  gc.freeze()


if __name__ == "__main__":
  cli.run(main)
