r"""The LCL paper's hyper-parameter search (Appendix B), chosen by validation accuracy.

Grid: learning rate {1e-5, 2e-5, 3e-5} x alpha {0.1, 0.2, 0.3, 0.4, 0.5} x temperature
{0.1, 0.3, 0.5} for SCL and LCL (45 points); learning rate only for CE (alpha and tau
do not enter its loss). Each point is trained for every seed; the best point has the
highest mean validation accuracy (validation macro F1 for a multi-label dataset) at
the runs' best epoch; ties go to the earlier grid point. The paper's chosen presets:
learning rate 2e-5 (ISEAR 3e-5), alpha 0.5 (GoEmotions 0.1), tau 0.3 (SST-5 0.1).

  python -m experiments.hparam_search --datasets=isear --objectives=lcl \
    --data_dir=../shared/data --workdir=runs/paper --parallel_runs=4

`--preset=reimplementation` searches seed 001's grid instead (its SST-5 search: alpha
{0.1, 0.2, 0.7} x tau {0.07, 7, 10, 100, 1000} x batch {4, 8, 32} texts, learning rate
2e-5 as it does not give one; its best: alpha 0.2, tau 10, batch 32), with its setup:
10 epochs, no augmented views, the contrastive term summed over the K texts
(--contrastive_reduction=sum, --lcl_views=texts, --baseline_views=texts; flags given win):

  python -m experiments.hparam_search --preset=reimplementation --datasets=sst5     --objectives=lcl --data_dir=../shared/data --workdir=runs/paper

Runs go to <workdir>/hparam/<dataset>/lr<lr>_alpha<a>_tau<t>[_batch<b>]/<objective>/seed<k>; the
report (every grid point ranked, the best, the paper's preset) and best.json (the
chosen values per dataset and objective) to <workdir>/reports/hparam_search/. Use the
chosen values with the table binaries' --learning_rate/--alpha/--temperature (and a
separate --workdir). The same command resumes an interrupted search.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

from absl import app, flags

from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib, stats
from lcl_jax.studies import study_numbers, sweep
from lcl_jax.train.config import dataset_preset

cli.define_flags(seeds="0", datasets=("isear",), objectives=("lcl",),
                 datasets_help="Datasets to search on (any lcl_jax.data dataset).")
flags.DEFINE_list("learning_rates", [f"{v:g}" for v in paper.HPARAM_LEARNING_RATES],
                  "Learning-rate grid.")
flags.DEFINE_list("alphas", [f"{v:g}" for v in paper.HPARAM_ALPHAS], "Alpha grid (SCL, LCL).")
flags.DEFINE_list("temperatures", [f"{v:g}" for v in paper.HPARAM_TEMPERATURES],
                  "Temperature grid (SCL, LCL).")
flags.DEFINE_list("batch_sizes", [], "Grid of texts per batch (default: --texts_per_batch only).")
flags.DEFINE_enum("preset", "paper", ["paper", "reimplementation"],
                  "Grid defaults: the LCL paper's Appendix B, or seed 001's re-implementation "
                  "grid (flags given explicitly still win).")
FLAGS = flags.FLAGS

# Seed 001's grid (study_numbers.GRID_*); it names no learning rate: the paper's 2e-5.
REIMPLEMENTATION_GRID = {
    "learning_rates": ["2e-5"],
    "alphas": [f"{v:g}" for v in study_numbers.GRID_ALPHAS],
    "temperatures": [f"{v:g}" for v in study_numbers.GRID_TEMPERATURES],
    "batch_sizes": [str(v) for v in study_numbers.GRID_BATCH_SIZES],
}

NAME = "hparam_search"
OBJECTIVES = ("ce", "scl", "lcl", "bert_ce")
SMOKE_GRID = {"learning_rates": ["2e-5"], "alphas": ["0.5"], "temperatures": ["0.1", "0.3"],
              "batch_sizes": []}


@dataclasses.dataclass(frozen=True)
class Point:
  learning_rate: float
  alpha: float | None
  temperature: float | None
  texts_per_batch: int | None = None  # None: --texts_per_batch

  @property
  def variant(self) -> str:
    name = f"lr{self.learning_rate:g}"
    if self.alpha is not None:
      name += f"_alpha{self.alpha:g}_tau{self.temperature:g}"
    if self.texts_per_batch is not None:
      name += f"_batch{self.texts_per_batch}"
    return name


def _grid_values(name: str) -> list[float]:
  values = FLAGS[name].value
  if FLAGS.preset == "reimplementation" and not FLAGS[name].present:
    values = REIMPLEMENTATION_GRID[name]
  if FLAGS.smoke and not FLAGS[name].present:
    values = SMOKE_GRID[name]
  if name == "batch_sizes" and not values:
    return [None]
  try:
    parsed = [float(v) for v in values]
  except ValueError as e:
    raise app.UsageError(f"--{name}: {e}") from e
  if not parsed:
    raise app.UsageError(f"--{name} is empty")
  return list(dict.fromkeys(parsed))


def preset_overrides(objective: str) -> dict[str, Any]:
  """TrainConfig fields every run of the preset gets: with --preset=reimplementation seed
  001's setup (`study_numbers.SEED001_SETUP`, no views, summed contrastive term; --smoke
  keeps its epochs), less the fields whose flag was given; none for the paper's."""
  if FLAGS.preset != "reimplementation":
    return {}
  fields = dict(study_numbers.SEED001_SETUP)
  fields.pop("lcl_views" if objective != "lcl" else "baseline_views")
  if objective not in ("scl", "lcl"):
    fields.pop("contrastive_reduction")
  if FLAGS.smoke:
    fields.pop("epochs")
  return {name: value for name, value in fields.items() if not FLAGS[name].present}


def grid(objective: str) -> list[Point]:
  """The grid points of `objective`, in search order (learning rate outermost)."""
  lrs = _grid_values("learning_rates")
  batches = [None if b is None else int(b) for b in _grid_values("batch_sizes")]
  if objective in ("ce", "bert_ce"):
    return [Point(lr, None, None, b) for lr, b in itertools.product(lrs, batches)]
  return [Point(lr, a, t, b) for lr, a, t, b in itertools.product(
      lrs, _grid_values("alphas"), _grid_values("temperatures"), batches)]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  if any(FLAGS[n].present for n in ("learning_rate", "alpha", "temperature")):
    raise app.UsageError("use --learning_rates/--alphas/--temperatures (grids) here")
  datasets = list(dict.fromkeys(FLAGS.datasets))
  objectives = cli.check_choices(FLAGS.objectives, OBJECTIVES, "objectives")
  seeds = cli.seeds()
  base = cli.base_config()
  root = cli.root() / "hparam"
  specs, point_of = [], {}
  for dataset in datasets:
    for objective in objectives:
      for point in grid(objective):
        for seed in seeds:
          overrides: dict[str, Any] = {**preset_overrides(objective),
                                       "learning_rate": point.learning_rate}
          if point.alpha is not None:
            overrides.update(alpha=point.alpha, temperature=point.temperature)
          if point.texts_per_batch is not None:
            overrides["texts_per_batch"] = point.texts_per_batch
          spec = sweep.make_spec(root, base, dataset=dataset, objective=objective, seed=seed,
                                 variant=point.variant, **overrides)
          specs.append(spec)
          point_of[spec.key] = point
  execution = cli.execute(specs)

  sections, best_json, ranking_json = [], {}, []
  for dataset in datasets:
    preset = dataset_preset(dataset)
    for objective in objectives:
      rows, scored = [], []
      for point in grid(objective):
        runs = [execution.results[s.key] for s in specs
                if point_of[s.key] == point and s.config.dataset == dataset
                and s.config.objective == objective and s.key in execution.results]
        metric = runs[0]["selection_metric"] if runs else "accuracy"
        val = stats.summarize([100 * r["validation"][metric] for r in runs])
        test = stats.summarize([100 * r["test"][metric] for r in runs])
        scored.append((point, val, test, metric))
      ranked = sorted((s for s in scored if s[1].n), key=lambda s: -s[1].mean)  # stable
      best = ranked[0] if ranked else None
      for rank, (point, val, test, metric) in enumerate(ranked + [s for s in scored
                                                                   if not s[1].n], 1):
        is_preset = (point.learning_rate == preset["learning_rate"]
                     and point.alpha in (None, preset["alpha"])
                     and point.temperature in (None, preset["temperature"]))
        marks = ", ".join(m for m, on in (("best", best is not None and point == best[0]),
                                          ("paper preset", is_preset)) if on)
        rows.append([str(rank) if val.n else "–", f"{point.learning_rate:g}",
                     "–" if point.alpha is None else f"{point.alpha:g}",
                     "–" if point.temperature is None else f"{point.temperature:g}",
                     "–" if point.texts_per_batch is None else str(point.texts_per_batch),
                     str(val.n), report_lib.format_mean_sd(val),
                     report_lib.format_mean_sd(test), marks])
        ranking_json.append({"dataset": dataset, "objective": objective,
                             **dataclasses.asdict(point), "metric": metric,
                             "validation": val.as_dict(), "test": test.as_dict()})
      metric = best[3] if best else "accuracy"
      sections.append((f"{paper.dataset_label(dataset)} — {objective.upper()}", (
          f"Ranked by mean validation {metric} (%); test {metric} beside it. Paper preset: "
          f"lr {preset['learning_rate']:g}, alpha {preset['alpha']:g}, tau "
          f"{preset['temperature']:g}.\n\n" + report_lib.markdown_table(
              ["rank", "lr", "alpha", "tau", "batch", "n", f"validation {metric}",
               f"test {metric}", ""], rows))))
      if best is not None:
        point, val, test, metric = best
        best_json.setdefault(dataset, {})[objective] = {
            **dataclasses.asdict(point), "metric": metric, "validation": val.as_dict(),
            "test": test.as_dict(), "paper_preset": preset}

  out_dir = cli.report_dir(NAME)
  report_lib.write_text_atomic(out_dir / "best.json", json.dumps(
      report_lib.json_safe(best_json), indent=2) + "\n")
  report = report_lib.Report(
      name=NAME, title=("Hyper-parameter search (Appendix B grid)" if FLAGS.preset == "paper"
                       else "Hyper-parameter search (seed 001's re-implementation grid)"), split="validation",
      columns=[], methods=objectives, metrics=[], cells=[],
      settings=cli.settings(seeds, workdir=str(root), learning_rates=_grid_values("learning_rates"),
                            alphas=_grid_values("alphas"),
                            temperatures=_grid_values("temperatures"),
                            batch_sizes=[b for b in _grid_values("batch_sizes") if b],
                            preset=FLAGS.preset),
      sections=sections, extra={"grid": ranking_json, "best": best_json},
      runs=[report_lib.run_record(report_lib.Observation(s.config.dataset, s.config.objective,
                                                         s.config.seed, execution.results[s.key],
                                                         s.key, str(s.workdir)))
            for s in specs if s.key in execution.results],
      notes=["best.json holds the chosen values per dataset and objective."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
