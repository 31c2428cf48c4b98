r"""GoEmotions-28 multi-label studies: seed 000's Tables 3-6 and Figs. 3-4, seed 003's table.

Seed 000 (Huang & Wen) fine-tunes BERT/ELECTRA with BCE ("direct", its Table 3) and
with multi-label LCL over encoder pairs Φ+Ψ (Table 4), reports per-emotion results
(Tables 5, 6) and t-SNE plots of the [CLS] vectors (Figs. 3, 4). Seed 003 (Yin) fine-tunes
BERT with DenseLayer(1)/(2) heads, a fixed or decaying rate, two-stage training,
per-class thresholds and a concatenation expansion. Every run reports its test metrics
under the global threshold (--thresholds, 0.5) and under per-class thresholds fitted on
--threshold_fit (validation by default); report.md has both columns, the seeds' numbers in
the column of the rule they used, Welch tests of LCL against the direct model (with
several --seeds), Tables 5/6 and the figures.

The seeds' run (BERT-base and ELECTRA-base from the Hugging Face hub; hours on a GPU):

  python -m experiments.goemotions_multilabel --data_dir=../shared/data \
    --workdir=runs/goemotions28 --seeds=0-4

A reduced run on this CPU with the packaged MiniLM in both roles (see BUILD_NOTES):

  python -m experiments.goemotions_multilabel --bert_encoder=minilm --electra_encoder=minilm \
    --tables=000_t3,000_t4 --rows=direct_bert,lcl_bert+bert --max_train_examples=2000 \
    --epochs=2 --data_dir=../shared/data --workdir=runs/goemotions28_minilm

Tables (--tables): 000_t3 (direct BCE: direct_bert, direct_electra), 000_t4 (LCL pairs:
lcl_bert+bert, lcl_electra+electra, lcl_bert+electra, lcl_electra+bert), 003 (s003_01 ...
s003_11, the poster's rows in order), beyond (two-stage LCL: lcl_bert+bert_2stage,
lcl_electra+electra_2stage); --rows picks single rows. Presets (each overridden by its
flag): seed 000 direct 6 epochs, 8 texts a batch, constant lr 1e-5, dropout 0.3; LCL 9
epochs, 16 texts, constant 4e-5, tau 0.3, lambda (alpha) 0.5; seed 003 its table's head,
schedule, dropout and epochs at --s003_learning_rate. The report goes to
<workdir>/reports/goemotions28/{report.md,results.json,results.csv,tests.csv,figures/}.

Seed 000's numbers (test, macro average, threshold 0.5, one run each):

  Table 3 direct     P      R      F1   | Table 4 LCL Φ+Ψ      P      R      F1
  BERT_base          0.606  0.398  0.462 | BERT+BERT            0.604  0.445  0.481
  CharBert           0.538  0.427  0.466 | ELECTRA+ELECTRA      0.546  0.458  0.488
  BERTweet           0.574  0.423  0.469 | BERT+ELECTRA         0.510  0.460  0.472
  ELECTRA            0.584  0.442  0.479 | CharBert+ELECTRA     0.531  0.485  0.492
"""
from __future__ import annotations

import dataclasses
import os

from absl import app, flags

from lcl_jax.studies import cli, paper_numbers as paper
from lcl_jax.studies import goemotions_multilabel as ml
from lcl_jax.studies import report as report_lib

cli.define_flags(seeds="0", datasets=(ml.DATASET,), objectives=("ce", "lcl"),
                 datasets_help="Fixed: goemotions_multilabel (28 labels).")
flags.DEFINE_list("tables", list(ml.TABLES), f"Tables to run, among {list(ml.TABLES)}.")
flags.DEFINE_list("rows", [], "Rows to run (default: every row of --tables).")
flags.DEFINE_string("bert_encoder", paper.BERT_BASE, "The 'BERT' encoder (smoke: --encoder).")
flags.DEFINE_string("electra_encoder", paper.ELECTRA_BASE,
                    "The 'ELECTRA' encoder (smoke: --encoder).")
flags.DEFINE_float("s003_learning_rate", 5e-5, "Seed 003's rows' rate (the poster's fixed "
                   "5e-5; it gives no value for 'Dynamic lr', which decays from this one).")
flags.DEFINE_integer("s003_expansion", 43410, "Extra concatenated rows of seed 003's "
                     "'ExpandedDataset' rows (the poster gives no size; default: doubles "
                     "train). Smoke: 20.")
flags.DEFINE_integer("beyond_head_epochs", 3, "Stage-2 epochs of the two-stage LCL rows.")
flags.DEFINE_bool("figures", True, "Write the t-SNE and per-class F1 figures.")
FLAGS = flags.FLAGS

NAME = "goemotions28"
# Flags whose explicit value beats the seeds' presets.
_PRESET_FLAGS = ("epochs", "texts_per_batch", "learning_rate", "lr_schedule",
                 "classifier_dropout", "temperature", "alpha", "head", "head_epochs",
                 "concat_expansion", "baseline_views")


def encoders() -> dict[str, str]:
  out = {}
  for role in ("bert", "electra"):
    flag = f"{role}_encoder"
    out[role] = cli.encoder() if FLAGS.smoke and not FLAGS[flag].present else FLAGS[flag].value
  return out


def rows() -> list[str]:
  tables = cli.check_choices(FLAGS.tables, ml.TABLES, "tables")
  if FLAGS.rows:
    return cli.check_choices(FLAGS.rows, list(ml.ROWS), "rows")
  return ml.rows_of(tables)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  seeds, chosen, names = cli.seeds(), rows(), encoders()
  base = cli.base_config()
  # Φ's [CLS] vectors of test, for the t-SNE figure.
  base = dataclasses.replace(base, save_features=bool(FLAGS.figures))
  expansion = 20 if FLAGS.smoke and not FLAGS["s003_expansion"].present else FLAGS.s003_expansion
  specs = ml.make_specs(
      cli.root(), base, chosen, seeds, encoders=names,
      explicit={f for f in _PRESET_FLAGS if FLAGS[f].present}, smoke=FLAGS.smoke,
      seed003_learning_rate=FLAGS.s003_learning_rate, expansion=expansion,
      beyond_head_epochs=FLAGS.beyond_head_epochs)
  execution = cli.execute(specs)
  observations = ml.observations(specs, execution.results)
  labels = {k: ml.row_label(ml.ROWS[k], {r: cli.encoder_label(e) for r, e in names.items()})
            for k in chosen}
  cells = report_lib.build_cells(observations, columns=list(ml.COLUMNS), methods=chosen,
                                 metrics=ml.METRICS, split="test", paper=ml.paper_lookup)
  by_row = ml.runs_by_row(specs, execution.results)
  sections, extra = [], {}
  for heading, builder, key in (
      ("Seed 000 Table 5 — per-emotion results of our best row", ml.table5_section, "table5"),
      ("Seed 000 Table 6 — selected emotions across models", ml.table6_section, "table6")):
    built = builder(by_row, labels.get)
    if built:
      sections.append((heading, built[0]))
      extra[key] = built[1]
  if FLAGS.figures:
    by_spec = {s.key: s for s in specs}
    first_seed = {}
    for s in specs:
      first_seed.setdefault(s.key.split("/")[1], s.key)
    panels = [(labels[k], first_seed[k]) for k in ("direct_bert", "lcl_bert+bert")
              if k in first_seed and first_seed[k] in execution.results]
    f1_rows = [(labels[k], k) for k in ("direct_bert", "lcl_bert+bert") if k in by_row]
    lines = ml.write_figures(cli.report_dir(NAME) / "figures", by_spec, panels, f1_rows,
                             by_row, FLAGS.data_dir or os.environ.get("LCL_DATA_DIR"))
    if lines:
      sections.append(("Figures (seed 000 Figs. 3-4; per-class F1)", "\n\n".join(lines)))
  report = report_lib.Report(
      name=NAME, title="GoEmotions-28 multi-label — seeds 000 and 003 (test set)",
      split="test", columns=list(ml.COLUMNS), methods=chosen, metrics=list(ml.METRICS),
      cells=cells, comparisons=ml.comparisons(cells),
      settings=cli.settings(seeds, bert_encoder=names["bert"],
                            electra_encoder=names["electra"],
                            threshold_fit=base.threshold_fit, thresholds=base.thresholds),
      column_labels=dict(ml.COLUMN_LABELS), method_labels=labels,
      reference_rows=ml.REFERENCE_ROWS, reference_metric="macro_f1",
      sections=sections, extra=extra,
      runs=[report_lib.run_record(o) for o in observations if o.column == "global"],
      notes=["Seeds' values: one run each (seed 000 global threshold 0.5; seed 003 per-class "
             "thresholds fitted on train where its row says OptOnThreshold, else 0.5); ours "
             "name the encoders actually used. Seed 003's 'Acc' is read as exact-match "
             "accuracy.",
             "Metric keys: macro/micro/weighted averages of scikit-learn's multi-label "
             "precision_recall_fscore_support (zero_division=0); exact_match = subset "
             "accuracy."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
