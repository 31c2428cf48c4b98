r"""Seed 004's GoEmotions-28 methods: Table 2 (macro F1), Table 3 (NMI), Figures 3-8.

Seed 004 (Wang & Feng, "Delving into Fine-Grained Emotion Classification") fine-tunes
BERT-base on the 28 GoEmotions labels with sigmoid BCE and adds auxiliary coarse tasks
(Ekman / sentiment), label-embedding attention, and embedding mixing at inference (with
the most similar training text or a T5 paraphrase). Each trained row is one fine-tuning
(`lcl_jax.studies.goemotions_methods`); the mixing rows evaluate a trained row's best
checkpoint (nothing is retrained). Report: <workdir>/reports/goemotions_methods/
{report.md,results.json,results.csv,figures/}.

The document's run (BERT-base from the Hugging Face hub; a GPU; T5 paraphrases as a TSV,
or --t5_checkpoint=<local T5 folder> to generate them):

  python -m experiments.goemotions_methods --data_dir=../shared/data \
    --workdir=runs/goemotions_methods --paraphrase_file=paraphrases.tsv

A reduced run on this CPU with the packaged MiniLM (see BUILD_NOTES "Seed 004 methods"):

  python -m experiments.goemotions_methods --encoder=minilm \
    --rows=baseline_4,aux_senti,labelemb_4,mix_train_4 --epochs=1 \
    --max_train_examples=2000 --max_eval_examples=500 --max_length=64 \
    --length_buckets=32,64 --eval_every_steps=25 --data_dir=../shared/data \
    --workdir=/work/runs/goemotions_methods_minilm

Rows (--rows; default the document's 13): baseline_4, baseline_10, aux_ekman, aux_senti,
labelemb_4, labelemb_10, labelemb_aux_senti, mix_train_4, mix_train_10, mix_t5_4,
mix_t5_10, mix_t5_aux, mix_t5_labelemb; beyond the document mix_train_aux,
mix_train_labelemb. Preset (each overridden by its flag): batch 16, AdamW 5e-5, 10
epochs (4 for the *_4 rows), threshold 0.3, [CLS] -> one feed-forward layer (dropout
0.1), 50 text tokens after the label tokens, T from 0.8, mixing weight 0.92 (mixing:
--embed_mix_weight, --embed_mix_similarity), test evaluation every 1,000 steps (Fig. 5).
The trained rows never mix (--embed_mix is ignored: the mixing rows set it themselves).
--smoke: 1 step a run on tiny subsets (CI: tests/test_experiment_binaries.py).

The document's numbers (Table 2, test macro F1, one run each):

  Baseline 4 / 10 ep               0.470 / 0.506   Embed Mix (Train) 4 / 10      0.472 / 0.472
  Aux Task (ekman) / (senti) 10    0.510 / 0.513   Embed Mix (T5) 4 / 10         0.489 / 0.513
  Label Embeds 4 / 10              0.537 / 0.537   Embed Mix (T5) + Aux Tasks    0.489
  Label Embeds + Aux Tasks (senti) 0.530           Embed Mix (T5) + Label Embeds 0.528

Table 3 (NMI_joint with the 28-label task; train / validation / test): sentiment
3.44e-17 / 0.00460 / 0.00010, Ekman 1.78e-05 / 0.00833 / 0.00028.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

from absl import app, flags

from lcl_jax.studies import cli, paper_numbers
from lcl_jax.studies import goemotions_methods as methods
from lcl_jax.studies import report as report_lib
from lcl_jax.studies import sweep
from lcl_jax.train.config import TrainConfig

cli.define_flags(seeds="0", datasets=(methods.DATASET,), objectives=(methods.OBJECTIVE,),
                 datasets_help="Fixed: goemotions_multilabel (28 labels).",
                 workdir="runs/goemotions_methods")
flags.FLAGS.set_default("encoder", paper_numbers.BERT_BASE)
flags.DEFINE_list("rows", list(methods.DOCUMENT_ROWS),
                  f"Rows to run, among {list(methods.ROWS)}.")
flags.DEFINE_bool("figures", True, "Write Figures 3-8 (PNG + CSV).")
FLAGS = flags.FLAGS

NAME = "goemotions_methods"
_MIX_FIELDS = ("embed_mix", "embed_mix_weight", "embed_mix_similarity", "paraphrase_file",
               "t5_checkpoint")
# Flags whose explicit value beats the document's preset.
_PRESET_FLAGS = ("epochs", "texts_per_batch", "learning_rate", "thresholds", "threshold_fit",
                 "eval_every_steps", "head", "classifier_dropout", "baseline_views",
                 "label_text_tokens", "aux_weight_start")


def _mix_options() -> dict:
  return {"weight": FLAGS.embed_mix_weight, "similarity": FLAGS.embed_mix_similarity,
          "paraphrase_file": FLAGS.paraphrase_file, "t5_checkpoint": FLAGS.t5_checkpoint}


def _run_settings(specs) -> dict:
  """What the trained runs share (the preset as resolved), for the report's settings."""
  out = {"paper encoder": paper_numbers.BERT_BASE}
  if specs:
    cfg = specs[0].config
    for name in ("epochs", "texts_per_batch", "learning_rate", "thresholds", "head",
                 "classifier_dropout", "baseline_views", "eval_every_steps", "max_length"):
      out[name] = getattr(cfg, name)
    out["epochs"] = sorted({s.config.epochs for s in specs})
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  chosen = cli.check_choices(FLAGS.rows, list(methods.ROWS), "rows")
  seeds = cli.seeds()
  # The mixing flags belong to the mixing rows (inference on a finished run), not to the
  # trained runs' configs.
  defaults = TrainConfig()
  base = dataclasses.replace(cli.base_config(), **{
      name: getattr(defaults, name) for name in _MIX_FIELDS})
  explicit = {f for f in _PRESET_FLAGS if f in FLAGS and FLAGS[f].present}
  specs = methods.make_specs(cli.root(), base, chosen, seeds, explicit=explicit,
                             smoke=FLAGS.smoke)
  mix_options = _mix_options() if any(not methods.ROWS[k].trained for k in chosen) else {}
  jobs, skipped = methods.make_mix_jobs(cli.root(), specs, chosen, **mix_options)
  for job in jobs:  # a bad --paraphrase_file / --t5_checkpoint / weight: before any training
    try:
      dataclasses.replace(job.source.config, **job.settings).validate()
    except ValueError as e:
      raise app.UsageError(str(e)) from None
  execution = cli.execute(specs)
  mixed, mix_failed = methods.run_mix_jobs(
      jobs, compute=not FLAGS.report_only and not execution.interrupted,
      source_results=execution.results)
  # The mixing rows join the sweep's bookkeeping (missing / failed / report).
  all_specs = list(specs) + [sweep.RunSpec(j.key, dataclasses.replace(
      j.source.config, workdir=str(j.workdir))) for j in jobs]
  everything = cli.Execution({**execution.results, **mixed},
                             {**execution.failed, **mix_failed}, execution.interrupted)
  rows = [k for k in methods.ROWS if k in chosen or k in methods.trained_rows(chosen)]
  encoder_name = cli.encoder_label(cli.encoder())
  labels = {k: methods.row_label(k, encoder_name) for k in rows}
  cells = report_lib.build_cells(methods.observations(everything.results),
                                 columns=list(methods.COLUMNS), methods=rows,
                                 metrics=list(methods.METRICS), split="test",
                                 paper=methods.paper_lookup)
  data_dir = FLAGS.data_dir or os.environ.get("LCL_DATA_DIR")
  sections, extra = [], {}
  if skipped:
    sections.append(("Rows not run", "\n".join(f"- `{k}` ({methods.ROWS[k].label}): {why}"
                                               for k, why in skipped.items())))
    extra["not_run"] = skipped
  if data_dir:
    body, nmi_rows = methods.table3_section(data_dir)
    sections.append(("Seed 004 Table 3 — NMI between the auxiliary tasks and the main task",
                     body))
    extra["table3"] = nmi_rows
  if FLAGS.figures and data_dir:
    lines = methods.write_figures(cli.report_dir(NAME) / "figures", specs, everything.results,
                                  labels.get, data_dir=data_dir,
                                  max_train_examples=base.max_train_examples)
    if lines:
      sections.append(("Figures (seed 004 Figs. 3-8)", "\n\n".join(lines)))
  report = report_lib.Report(
      name=NAME, title="GoEmotions-28 — seed 004's methods (test set)", split="test",
      columns=list(methods.COLUMNS), methods=rows, metrics=list(methods.METRICS),
      cells=cells, settings=cli.settings(
          seeds, rows=chosen, **_run_settings(specs),
          **{f"embed_mix_{k}" if k in ("weight", "similarity") else k: v
             for k, v in mix_options.items() if v is not None}),
      column_labels=dict(methods.COLUMN_LABELS), method_labels=labels,
      reference_metric="macro_f1", sections=sections, extra=extra,
      runs=[report_lib.run_record(o) for o in methods.observations(everything.results)],
      notes=["Document values: seed 004's Table 2 (test macro F1, threshold 0.3, one run "
             "each, BERT-base); ours name the encoder actually used and are at the runs' "
             "--thresholds.",
             "Mixing rows evaluate the best-validation params of the trained row they name "
             "(no retraining); their folders hold results.json only."])
  return cli.finish(report, everything, specs=all_specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
