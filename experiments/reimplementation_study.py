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

Each row trains with its document's recipe (`study_numbers.ROW_RECIPES`, printed in the
report's "Recipes" section); a flag given on the command line wins over it. Seed 001:
CE rows 10 epochs, batch 8; SCL / LCL its grid's best (alpha 0.2, tau 10, batch 32), 10
epochs, the contrastive term summed over the batch's K texts
(--contrastive_reduction=sum), LCL on the texts alone (--lcl_views=texts). Seed 000:
BERTweet as its direct models (6 epochs, batch 8, fixed 1e-5, dense + tanh head with
dropout 0.3), the biLSTM at Adam's fixed 1e-3. No row augments (--baseline_views=texts),
as neither document does. Seed-001 transformer runs live under
<dataset>/seed001/<objective>/seed<k> (ParsiNLU: seed001_mbert), apart from table1's.

Seed 001 reports its best test run; we report mean (sd) over --seeds at the best
validation epoch. Its grid (alpha {0.1, 0.2, 0.7}, tau {0.07, 7, 10, 100, 1000}, batch
{4, 8, 32}) is in `study_numbers.GRID_*`. `--smoke` runs a tiny version (CI).
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
# Run folders of seed 001's transformer rows (apart from table1/table2's paper runs).
SEED001_VARIANT = "seed001"


def _encoder_flag(name: str) -> str:
  if FLAGS.smoke and not FLAGS[name].present:
    return cli.encoder()
  return FLAGS[name].value


def recipe_fields(row: str) -> dict[str, Any]:
  """The row's document recipe (`study_numbers.ROW_RECIPES`) less the fields whose flag
  was given on the command line (the user's value wins); --smoke keeps its epochs."""
  fields = dict(study.ROW_RECIPES[row].fields)
  if FLAGS.smoke:
    fields.pop("epochs", None)
  return {name: value for name, value in fields.items() if not FLAGS[name].present}


def row_overrides(row: str, dataset: str) -> tuple[str, str | None, dict[str, Any]]:
  """(objective, variant, TrainConfig overrides) of one row on one dataset."""
  multilingual = dataset == "parsinlu_sentiment"
  overrides: dict[str, Any] = recipe_fields(row)
  if row in BASELINE_ROWS:
    overrides.update(encoder=BASELINE_ROWS[row], weighting_encoder=None)
    if BASELINE_ROWS[row] != "bilstm":
      overrides["glove_path"] = None  # --glove_path is the biLSTM's (seed 000)
    return "ce", row, overrides
  overrides["glove_path"] = None
  if row == "bertweet":
    overrides.update(encoder=_encoder_flag("bertweet_encoder"), weighting_encoder=None)
    return "ce", row, overrides
  if row == "bert_ce":
    overrides.update(encoder=_encoder_flag("mbert_encoder" if multilingual else "bert_encoder"),
                     weighting_encoder=None)
  elif multilingual:
    overrides.update(encoder=_encoder_flag("mbert_encoder"), weighting_encoder=None)
  return row, SEED001_VARIANT + ("_mbert" if multilingual else ""), overrides


def per_row_settings() -> dict[str, str]:
  """Settings-block entries of the recipe fields that differ per row (the block would
  show the trainer's default, which no row then uses); a flag given applies to all."""
  fields = {name for recipe in study.ROW_RECIPES.values() for name in recipe.fields}
  if FLAGS.smoke:
    fields.discard("epochs")
  return {name: "per row (see Recipes)" for name in sorted(fields) if not FLAGS[name].present}


def _used(config) -> dict[str, Any]:
  """The recipe-relevant settings a run actually used (presets filled in)."""
  try:
    config = config.resolved()
  except ValueError:
    pass
  views = config.lcl_views if config.objective == "lcl" else config.baseline_views
  used = {"epochs": config.epochs, "texts_per_batch": config.texts_per_batch,
          "learning_rate": config.learning_rate, "lr_schedule": config.lr_schedule,
          "weight_decay": config.weight_decay, "views": views}
  if config.objective in ("scl", "lcl"):
    used.update(alpha=config.alpha, temperature=config.temperature,
                contrastive_reduction=config.contrastive_reduction)
  if config.encoder not in BASELINE_ROWS.values():
    used["head"] = "bert" if config.objective == "bert_ce" else config.head
    used["classifier_dropout"] = config.classifier_dropout
  if config.patience is not None:
    used.update(patience=config.patience, early_stopping_on=config.early_stopping_on)
  return used


def recipes(rows, specs, row_of) -> tuple[str, dict[str, Any]]:
  """The report's "Recipes" section (markdown) and its JSON: per row, the document's
  recipe, what the document leaves open, and the settings the runs used."""
  used = {}
  for spec in specs:
    used.setdefault(row_of[spec.key], _used(spec.config))
  lines = ["| row | document | not in the document (ours) | used |", "|---|---|---|---|"]
  out = {}
  for row in rows:
    recipe = study.ROW_RECIPES[row]
    settings = used.get(row)
    shown = ", ".join(f"{k}={v}" for k, v in settings.items()) if settings else "(no run)"
    lines.append(f"| {row} | {recipe.source} | {recipe.unstated} | {shown} |")
    out[row] = {"document": recipe.source, "fields": recipe.fields,
                "not_in_document": recipe.unstated, "used": settings}
  return "\n".join(lines), out


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
  recipe_table, recipe_json = recipes(rows, specs, row_of)
  report = report_lib.Report(
      name=NAME, title="Re-implementation study (seed 001) and GoEmotions-28 baselines "
                       "(seed 000), test set",
      split="test", columns=datasets, methods=rows, metrics=list(METRICS), cells=cells,
      comparisons=report_lib.compare(cells, method_a="lcl", against=("ce", "scl", "bert_ce")),
      settings=cli.settings(seeds, bert_encoder=_encoder_flag("bert_encoder"),
                            mbert_encoder=_encoder_flag("mbert_encoder"),
                            bertweet_encoder=_encoder_flag("bertweet_encoder"),
                            glove_path=FLAGS.glove_path, **per_row_settings()),
      method_labels=labels,
      sections=[("Recipes", recipe_table)]
      + ([("Not run", "\n".join(not_run))] if not_run else []),
      extra={"not_run": skipped, "row_datasets": {r: list(study.ROW_DATASETS[r]) for r in rows},
             "recipes": recipe_json},
      runs=[report_lib.run_record(o) for o in observations],
      notes=["Document values: seed 001's best test accuracy (one run) and seed 000's "
             "macro F1; a cell without a document value shows '–'.",
             "Seed 000 Table 3 also gives BERTweet's macro precision 57.4 and recall 42.3 "
             "(results.json of each run has ours).",
             "Rows are run only on the datasets their document used (see results.json "
             "row_datasets); the others stay empty.",
             "Each row trains with its document's recipe (section Recipes; a flag given on "
             "the command line wins). Seed 001's SCL/LCL sum the contrastive term over the "
             "K texts (N x our mean for N anchors with a positive) and LCL sees no "
             "augmented views; no row augments."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
