"""A run's outputs: metrics.jsonl + TensorBoard events while it trains, and once it has
finished its results.json, per-class thresholds, plots, Hugging Face export and the
embedding-mixing evaluation of its best params (`finish_run`).
"""
from __future__ import annotations

import json
import logging
import pathlib
import shutil
import sys
from typing import Any

import jax
import numpy as np

from lcl_jax import models
from lcl_jax.models import pretrained
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, evaluation, mixing, model_card, objective_specs, plots
from lcl_jax.train import program as program_lib
from lcl_jax.train.config import BASELINE_ENCODERS, TrainConfig

log = logging.getLogger("lcl_jax.train")


def write_configs(cfgs, datas) -> None:
  """Each run's config.json: its config, its data, the JAX version and devices."""
  for c, d in zip(cfgs, datas):
    checkpoint_lib.write_json_atomic(pathlib.Path(c.workdir).absolute() / "config.json", {
        "config": json.loads(c.to_json()),
        "dataset": d.describe(),
        "jax_version": jax.__version__,
        "devices": [str(dev) for dev in jax.devices()],
        "process_count": jax.process_count(),
        "runs_per_program": len(cfgs),
    })


class Outputs:
  """metrics.jsonl + TensorBoard + stdout, from process 0 only."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, *, start_step: int = 0):
    """Appends to the run's outputs; on a resume from `start_step`, records of later
    (replayed) steps are dropped first, so every step appears once."""
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if enabled:
      truncate_metrics(workdir / "metrics.jsonl", start_step)
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
      try:
        SummaryWriter = _summary_writer_class()
        resumed = (workdir / "tensorboard").exists()
        self._tb = SummaryWriter(str(workdir / "tensorboard"),
                                 purge_step=start_step + 1 if resumed else None)
      except ImportError:  # pragma: no cover - tensorboardX is a dependency
        log.warning("tensorboardX not installed: no TensorBoard events")

  def write(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps(record, default=checkpoint_lib._json_default) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      step = int(record.get("step", 0))
      prefix = record.get("kind", "train")
      for key, value in flatten(record).items():
        if isinstance(value, (int, float)) and key not in ("step", "epoch"):
          self._tb.add_scalar(f"{prefix}/{key}", value, step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()


def _summary_writer_class():
  """`tensorboardX.SummaryWriter`, imported without importing torch.

  tensorboardX's writer module runs ``try: import torch`` at import time, to accept torch
  tensors (lcl_jax passes Python floats). Where torch is installed (the [test] extra) that
  import alone costs ~250 MB of RSS and ~1.5 s of a JAX training process (BUILD_NOTES
  "Parity with PyTorch"), so unless torch is already imported, the probe is answered
  with ImportError (`sys.modules["torch"] = None`) for the duration of this import only.
  Runs before the loop starts its prefetch thread (no other thread imports meanwhile).

  Raises:
    ImportError: tensorboardX is not installed.
  """
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None  # makes `import torch` raise ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if "torch" in sys.modules and sys.modules["torch"] is None:
      del sys.modules["torch"]
  return SummaryWriter


def truncate_metrics(path: pathlib.Path, last_step: int) -> None:
  """Keeps the records of metrics.jsonl with step <= last_step (the resumed state's);
  a torn last line of a killed run is dropped too. Rewritten atomically."""
  if not path.exists():
    return
  kept, dropped = [], 0
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      record = json.loads(line)
      keep = int(record.get("step", 0)) <= last_step
    except (ValueError, TypeError, AttributeError):
      keep = False
    if keep:
      kept.append(line)
    else:
      dropped += 1
  if dropped:
    log.info("metrics.jsonl: dropped %d record(s) after step %d (replayed on resume)",
             dropped, last_step)
    checkpoint_lib.write_atomic(path, "".join(line + "\n" for line in kept))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in record.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + "/"))
    else:
      flat[name] = value
  return flat


def finish_run(run: program_lib.Run, run_state, program, state, *, cfg: TrainConfig, spec,
               multilabel, thresholds, seconds, compiled_shapes, stage1_steps, modules,
               evaluate, is_main, aux_threshold,
               throughput: dict[str, Any] | None = None) -> dict[str, Any]:
  """Writes one run's results.json (+ thresholds, plots, export) and returns it.

  `evaluate(run, split_name, params)` is the loop's evaluation (used for the train-split
  scores of --threshold_fit=train); every process takes part in the evaluations."""
  workdir, progress, ckpt, data = run.workdir, run.progress, run.ckpt, run.data
  results = results_record(run, run_state, program.dp, cfg=cfg, spec=spec, modules=modules,
                           multilabel=multilabel, seconds=seconds,
                           compiled_shapes=compiled_shapes, stage1_steps=stage1_steps,
                           aux_threshold=aux_threshold)
  # tokens_per_second, real_tokens_per_second, model_flops_per_second, mfu (null: peak
  # unknown), peak_flops_per_device, flops_source (throughput.py), over the timed steps.
  results.update(throughput or {})
  if multilabel:
    fit_scores = None
    if cfg.threshold_fit == "train":  # every process takes part in the evaluation
      best_params, _ = ckpt.restore_best(run_state["params"])
      fit_scores = evaluate(run, "train", program.place_params(state, best_params))[1]
    if is_main:
      results.update(evaluation.multilabel_decisions(workdir, cfg, data.label_names, thresholds,
                                                     train_arrays=fit_scores))
  if cfg.embed_mix != "none":  # every process takes part in the evaluation
    best_params, _ = ckpt.restore_best(run_state["params"])
    mixed = mixed_evaluation(cfg, workdir, data, program.eval_dp, modules,
                             program.place_params(state, best_params), thresholds, is_main)
    results["mixed"] = mixed
  if is_main:
    results["plots"] = write_plots(workdir, progress, data.label_names, multilabel)
  if cfg.export_hf and is_main:
    results["export"] = export_best(ckpt, run_state["params"], modules,
                                    workdir / "export", cfg=cfg, results=results,
                                    label_names=data.label_names,
                                    thresholds=evaluation.decision_thresholds(results, thresholds)
                                    if multilabel else None)
  ckpt.close()
  if is_main:
    write_results(workdir, cfg, results)
  return results


def results_record(run: program_lib.Run, run_state, dp, *, cfg: TrainConfig, spec, modules,
                   multilabel, seconds, compiled_shapes, stage1_steps,
                   aux_threshold) -> dict[str, Any]:
  """The training part of results.json: the best-validation epoch's metrics, the
  history, throughput and, where they apply, the auxiliary task and the two stages."""
  progress, data = run.progress, run.data
  best = next(h for h in progress["history"] if h["epoch"] == progress["best_epoch"])
  results = {
      "dataset": cfg.dataset,
      "objective": cfg.objective,
      "encoder": cfg.encoder,
      "weighting_encoder": cfg.weighting_encoder if spec.uses_weighting_network else None,
      "seed": cfg.seed,
      "head": head_label(cfg, modules["primary"]),
      "synthetic": data.synthetic,
      "multilabel": multilabel,
      "selection_metric": evaluation.selection_metric(multilabel),
      "best_epoch": progress["best_epoch"],
      "epochs_trained": len(progress["history"]),
      "stopped_early": progress["stopped_early"],
      # Main-task metrics; the auxiliary head's (if any) go under results["aux"].
      "validation": {k: v for k, v in best["validation"].items() if k != "aux"},
      "test": {k: v for k, v in best["test"].items() if k != "aux"},
      "history": progress["history"],
      "steps": int(np.asarray(run_state["step"])),
      "sequences_per_second": run.rows / seconds if seconds else None,
      "compiled_train_shapes": compiled_shapes,
      "num_devices": dp.num_devices,
      "parallelism": dp.name,
      "split_sizes": data.split_sizes(),
      # Set when --max_eval_examples cut the test split: the test metrics are on a subset.
      "test_subset": data.test_subset(),
  }
  if data.aux_label_names:
    results["aux"] = {"task": cfg.aux_task, "label_names": list(data.aux_label_names),
                      "threshold": aux_threshold,
                      "weight": {"start": cfg.aux_weight_start, "end": cfg.aux_weight_end,
                                 "schedule": cfg.aux_schedule, "steps": stage1_steps},
                      "validation": best["validation"]["aux"], "test": best["test"]["aux"]}
  if cfg.head_epochs:
    results["two_stage"] = {"stage1_epochs": cfg.epochs, "stage2_epochs": cfg.head_epochs,
                            "stage2_learning_rate": cfg.head_learning_rate or cfg.learning_rate,
                            "stage2_start_step": stage1_steps}
  return results


def head_label(cfg: TrainConfig, primary_module: Any) -> str:
  """Which head Φ has, as results.json and the results tables print it: 'paper' (the LCL
  release's head), 'hf (BertForSequenceClassification)' (--head=hf, or an objective
  with its own head: bert_ce),
  'direct' / 'dense1' / 'dense2' / 'label_attention', or the baseline's module name."""
  architecture = getattr(primary_module, "HF_ARCHITECTURE", None)
  objective_head = objective_specs.get_spec(cfg.objective).primary_head != "paper"
  if objective_head or (cfg.head == "hf" and architecture):
    return f"hf ({architecture})"
  if cfg.label_embeddings:
    return "label_attention"
  if cfg.encoder in BASELINE_ENCODERS:
    return type(primary_module).__name__
  return cfg.head


def write_results(workdir: pathlib.Path, cfg: TrainConfig, results: dict[str, Any]) -> None:
  """Writes results.json (with the disk usage after the keep_checkpoints policy), then
  drops the latest checkpoints if the policy says so."""
  results_path = workdir / "results.json"
  # What the finished run occupies once the keep_checkpoints policy has been applied.
  dropped = (checkpoint_lib.LATEST_DIR,) if cfg.keep_checkpoints == "best" else ()
  results["keep_checkpoints"] = cfg.keep_checkpoints
  results["disk_bytes"] = checkpoint_lib.disk_usage(workdir, exclude=dropped)
  checkpoint_lib.write_json_atomic(results_path, results)
  if dropped:  # only now: a kill before results.json is written can still resume
    shutil.rmtree(workdir / checkpoint_lib.LATEST_DIR, ignore_errors=True)
  log.info("%s: results %s (%.1f MB on disk)", cfg.objective, results_path,
           results["disk_bytes"] / 1e6)


def mixed_evaluation(cfg: TrainConfig, workdir: pathlib.Path, data, dp, modules, params,
                     thresholds, is_main: bool) -> dict[str, Any]:
  """Seed 004's embedding mixing on the best params (validation and test, Φ only):
  metrics as the plain ones (global thresholds for multi-label), the mixed predictions
  in predictions/mixed_<split>.npz and the candidates in
  predictions/mixed_<split>_candidates.tsv (a valid --paraphrase_file)."""
  settings = mixing.MixSettings.from_config(cfg)
  mixer = mixing.Mixer(modules["primary"], {"primary": params["primary"]}, dp,
                       data.text_batches, matmul_precision=cfg.matmul_precision)
  split_texts = {name: list(data.splits[name].texts) for name in ("validation", "test")}
  mixed = mixing.evaluate_mixed(settings, mixer, split_texts, multilabel=data.multilabel,
                                encoder=cfg.encoder,
                                train_texts=list(data.splits["train"].texts),
                                max_length=cfg.max_length)
  out: dict[str, Any] = {**settings.describe(), "network": "primary"}
  for name, split in mixed.items():
    labels = data.eval_split(name).labels
    probs = split.probabilities
    out[name], predictions = evaluation.split_metrics(labels, probs, multilabel=data.multilabel,
                                           thresholds=thresholds)
    if is_main:
      arrays = {"labels": labels, "probabilities": probs.astype(np.float32),
                "predictions": predictions}
      extra = {}
      if split.candidate_index is not None:
        arrays.update(candidate_index=split.candidate_index, similarity=split.similarity)
        extra = {"similarity": split.similarity}
      checkpoint_lib.save_npz_atomic(workdir / "predictions" / f"mixed_{name}.npz", **arrays)
      mixing.write_candidates(workdir / "predictions" / f"mixed_{name}_candidates.tsv", name,
                              split_texts[name], split.candidates, extra)
  log.info("embed_mix=%s w=%g: validation %s  test %s", cfg.embed_mix, cfg.embed_mix_weight,
           evaluation.fmt(out["validation"]), evaluation.fmt(out["test"]))
  return out


def write_plots(workdir: pathlib.Path, progress, label_names, multilabel) -> dict[str, str]:
  """The run's PNG plots (lcl_jax.train.plots); a plotting failure is logged, not fatal."""
  try:
    return plots.write_run_plots(workdir, history=progress["history"], label_names=label_names,
                                 multilabel=multilabel, best_epoch=progress["best_epoch"])
  except Exception as e:  # pylint: disable=broad-except
    log.warning("could not draw the plots of %s: %s: %s", workdir, type(e).__name__, e)
    return {}


def export_best(ckpt, like_params, modules, directory: pathlib.Path, *, cfg: TrainConfig,
                results: dict[str, Any], label_names, thresholds) -> dict[str, str]:
  """Writes each network's best-validation params as a Hugging Face folder: weights,
  config.json (id2label/label2id, lcl_jax metadata), tokenizer and a model card."""
  best_params, _ = ckpt.restore_best(like_params)
  config = json.loads(cfg.to_json())
  exported = {}
  for name, module in modules.items():
    encoder = cfg.encoder if name == "primary" else cfg.weighting_encoder
    extra = {"lcl_jax": model_card.export_metadata(
        config, network=name, multilabel=results["multilabel"], thresholds=thresholds)}
    layout = getattr(module, "layout", None)
    if layout is not None:  # --label_embeddings: what rebuilds the rows and the head
      token_types = all(c.type_vocab_size >= 2
                        for _, _, c in data_pipeline.label_encoder_configs(cfg))
      # (The auxiliary head is not exported: like the other heads' it is training-only.)
      extra["lcl_jax"]["label_attention"] = {
          "text_tokens": cfg.label_text_tokens, "token_types": token_types}
    if results["multilabel"]:
      extra["problem_type"] = "multi_label_classification"
    path = models.save_classifier(directory / name, module, jax.device_get(best_params[name]),
                                  label_names=label_names, extra_config=extra, overwrite=True)
    tokenizer = pretrained.load_tokenizer(data_pipeline.resolve_checkpoint(encoder))
    # The run's length (issue 18 item 3): transformers' pipeline with truncation=True then
    # cuts texts where training and `predict` do, not at the checkpoint's 512.
    tokenizer.model_max_length = cfg.max_length
    tokenizer.save_pretrained(str(path))
    card = model_card.model_card(
        network=name, head=models.classifiers.head_kind(module),
        model_type=module.config.model_type, config=config,
        results=results, label_names=label_names, command=model_card.invocation(),
        folder_name=str(path))
    checkpoint_lib.write_atomic(path / "README.md", card)
    exported[name] = str(path)
  return exported


def restart_rate(bar) -> None:
  """Measures the bar's rate and ETA from now: a step that compiled is not typical."""
  bar.initial = bar.n
  bar.last_print_n = bar.n
  bar.start_t = bar.last_print_t = bar._time()  # pylint: disable=protected-access


def progress_bar(cfg: TrainConfig, is_main: bool, epoch: int, total: int, initial: int):
  if not (is_main and cfg.progress_bar):
    return None
  from tqdm import tqdm
  return tqdm(total=total, initial=initial,
              desc=f"{cfg.objective} epoch {epoch + 1}/{cfg.epochs + cfg.head_epochs}",
              unit="step", dynamic_ncols=True, leave=False)
