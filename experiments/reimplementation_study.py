r"""The follow-up studies' rows: seed 001's re-implementation (Tables 1-2, RNN/GRU) and seed
000's GoEmotions-28 baselines (biLSTM, CharCNN, BERTweet), our numbers beside theirs.

Rows (`--objectives`, names of `lcl_jax.studies.study_numbers.ROWS`) and where the
documents ran them (`ROW_DATASETS`; other cells stay empty):

  bert_ce, lcl     seed 001 Tables 1 and 2 (BERT-base CE / ELECTRA + LCL; mBERT on PNS)
  ce, scl          seed 001 Table 1 (ELECTRA + CE / SCL)
  rnn, gru         seed 001, Empathetic Dialogues (its text: 25 % and 30 %)
  bilstm           seed 000 §5.1, GoEmotions-28, fixed epochs (macro F1 0.42)
  bilstm_es        the same with early stopping (patience 3 on the validation loss)
  charcnn          seed 000 §2.1 / Zhang et al. small model, GoEmotions-28 (no number)
  bertweet         seed 000 Table 3, BERTweet + BCE (macro P/R/F1 0.574/0.423/0.469)

Datasets (`--datasets`): empathetic_dialogues, goemotions_first_label, emoint, sst5, sst2
(seed 001 Table 1), ag_news, tsa, parsinlu_sentiment (Table 2), goemotions_multilabel
(seed 000). A dataset whose files are not here (TSA and ParsiNLU are not shipped; AG News
needs TFDS's download) is printed as not run, with the reason.

The documents' run (hub checkpoints; GloVe Twitter 200-d for the biLSTM):

  python -m experiments.reimplementation_study --data_dir=../shared/data \
    --workdir=runs/paper --glove_path=glove.twitter.27B.200d.txt --epochs=10

Seed 001 fine-tuned 10 epochs with batch 8 and reports its best test run; we report
mean (sd) over --seeds at the best validation epoch. Its grid (alpha {0.1, 0.2, 0.7},
tau {0.07, 7, 10, 100, 1000}, batch {4, 8, 32}) is in `study_numbers.GRID_*`.
`--smoke` runs a tiny version (CI).
"""
from __future__ import annotations

from typing import Any

from absl import app, flags

from lcl_jax import data as data_lib
from lcl_jax.data import tfds_stock
from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib
from lcl_jax.studies import study_numbers as study, sweep

cli.define_flags(seeds="0-4", datasets=study.DATASETS, objectives=study.ROWS,
                 datasets_help=f"Datasets among {list(study.DATASETS)}.")
flags.DEFINE_string("bert_encoder", paper.BERT_BASE,
                    "Encoder of the BERT-base + CE row (default with --smoke: --encoder).")
flags.DEFINE_string("mbert_encoder", study.MULTILINGUAL_BERT,
                    "Encoder of both rows on ParsiNLU (default with --smoke: --encoder).")
flags.DEFINE_string("bertweet_encoder", study.BERTWEET_BASE,
                    "Encoder of the BERTweet row (default with --smoke: --encoder).")
FLAGS = flags.FLAGS

NAME = "reimplementation_study"
METRICS = ("accuracy", "macro_f1")
BASELINE_ROWS = {"rnn": "rnn", "gru": "gru", "bilstm": "bilstm", "bilstm_es": "bilstm",
                 "charcnn": "charcnn"}


def _encoder_flag(name: str) -> str:
  if FLAGS.smoke and not FLAGS[name].present:
    return cli.encoder()
  return FLAGS[name].value


def row_overrides(row: str, dataset: str) -> tuple[str, str | None, dict[str, Any]]:
  """(objective, variant, TrainConfig overrides) of one row on one dataset."""
  multilingual = dataset == "parsinlu_sentiment"
  if row in BASELINE_ROWS:
    overrides: dict[str, Any] = {"encoder": BASELINE_ROWS[row], "weighting_encoder": None}
    if BASELINE_ROWS[row] != "bilstm":
      overrides["glove_path"] = None  # --glove_path is the biLSTM's (seed 000)
    if row == "bilstm_es":
      overrides.update(patience=3, early_stopping_on="loss")
    return "ce", row, overrides
  if row == "bertweet":
    return "ce", row, {"encoder": _encoder_flag("bertweet_encoder"), "weighting_encoder": None,
                       "glove_path": None}
  overrides = {"glove_path": None}
  if row == "bert_ce":
    overrides.update(encoder=_encoder_flag("mbert_encoder" if multilingual else "bert_encoder"),
                     weighting_encoder=None)
  elif multilingual:
    overrides.update(encoder=_encoder_flag("mbert_encoder"), weighting_encoder=None)
  return row, ("mbert" if multilingual else None), overrides


def unavailable(datasets) -> dict[str, str]:
  """Datasets that cannot be read here -> why (their rows are printed as not run)."""
  reasons = {}
  for dataset in datasets:
    try:
      data_lib.load_split(dataset, "test", data_dir=FLAGS.data_dir, download=False)
    except (data_lib.DataFileNotFoundError, tfds_stock.StockBuilderUnavailableError,
            ImportError) as e:
      reasons[dataset] = str(e).splitlines()[0]
  return reasons


def run_specs(datasets, rows, seeds) -> tuple[list[sweep.RunSpec], dict[str, str]]:
  base = cli.base_config()
  specs, row_of = [], {}
  for dataset in datasets:
    for row in rows:
      if dataset not in study.ROW_DATASETS[row]:
        continue
      objective, variant, overrides = row_overrides(row, dataset)
      for seed in seeds:
        spec = sweep.make_spec(cli.root(), base, dataset=dataset, objective=objective,
                               seed=seed, variant=variant, **overrides)
        specs.append(spec)
        row_of[spec.key] = row
  return specs, row_of


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging()
  datasets = cli.check_choices(FLAGS.datasets, study.DATASETS, "datasets")
  rows = cli.check_choices(FLAGS.objectives, study.ROWS, "objectives")
  seeds = cli.seeds()
  skipped = unavailable(datasets)
  runnable = [d for d in datasets if d not in skipped]
  specs, row_of = run_specs(runnable, rows, seeds)
  execution = cli.execute(specs)
  observations = [report_lib.Observation(s.config.dataset, row_of[s.key], s.config.seed,
                                         execution.results[s.key], s.key)
                  for s in sweep.dedupe(specs) if s.key in execution.results]
  cells = report_lib.build_cells(observations, columns=datasets, methods=rows,
                                 metrics=METRICS, split="test",
                                 paper=report_lib.table_paper_lookup(study.NUMBERS))
  # Our rows name the encoders actually used.
  labels = {row: study.ROW_LABELS[row] for row in rows}
  name = cli.encoder_label(cli.encoder())
  mbert = cli.encoder_label(_encoder_flag("mbert_encoder"))
  labels.update(ce=f"{name} + CE", scl=f"{name} + SCL",
                lcl=f"{name} + LCL ({mbert} on PNS)",
                bert_ce=f"{cli.encoder_label(_encoder_flag('bert_encoder'))} + CE (BERT head; "
                        f"{mbert} on PNS)",
                bertweet=f"{cli.encoder_label(_encoder_flag('bertweet_encoder'))} + BCE "
                         "(seed 000's BERTweet row)")
  labels = {row: labels[row] for row in rows}
  not_run = [f"- `{d}`: {reason}" for d, reason in skipped.items()]
  report = report_lib.Report(
      name=NAME, title="Re-implementation study (seed 001) and GoEmotions-28 baselines "
                       "(seed 000), test set",
      split="test", columns=datasets, methods=rows, metrics=list(METRICS), cells=cells,
      comparisons=report_lib.compare(cells, method_a="lcl", against=("ce", "scl", "bert_ce")),
      settings=cli.settings(seeds, bert_encoder=_encoder_flag("bert_encoder"),
                            mbert_encoder=_encoder_flag("mbert_encoder"),
                            bertweet_encoder=_encoder_flag("bertweet_encoder"),
                            glove_path=FLAGS.glove_path),
      method_labels=labels,
      sections=[("Not run", "\n".join(not_run))] if not_run else [],
      extra={"not_run": skipped, "row_datasets": {r: list(study.ROW_DATASETS[r]) for r in rows}},
      runs=[report_lib.run_record(o) for o in observations],
      notes=["Document values: seed 001's best test accuracy (one run) and seed 000's "
             "macro F1; a cell without a document value shows '–'.",
             "Seed 000 Table 3 also gives BERTweet's macro precision 57.4 and recall 42.3 "
             "(results.json of each run has ours).",
             "Rows are run only on the datasets their document used (see results.json "
             "row_datasets); the others stay empty."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
