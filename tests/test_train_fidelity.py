"""The fidelity options of issue 14 that change what a run trains on or starts from:
`baseline_views` (baselines on paired views or on the texts only), `view_seed`
(augmented views fixed across seeds) and `head_init` (the Φ head's initial law).

Runs on the synthetic dataset (its views need no WordNet) with MiniLM's tokenizer and
the tiny random BERT of conftest; no training loop is run.
"""
import jax
import numpy as np
import pytest
from scipy import stats

from lcl_jax import losses
from lcl_jax.train import data_pipeline, objectives, optim, steps
from lcl_jax.train.config import TrainConfig


def _data(tmp_path, name, **overrides):
  values = dict(dataset="synthetic", objective="scl", encoder="minilm", seed=0,
                workdir=str(tmp_path / name), max_train_examples=24, max_eval_examples=8,
                texts_per_batch=6, max_length=32, length_buckets=(16, 32))
  values.update(overrides)
  return data_pipeline.prepare(TrainConfig(**values).resolved(), num_devices=1)


def test_baseline_views_texts_batches_hold_the_k_texts_only(tmp_path):
  paired = _data(tmp_path, "paired", baseline_views="paired")
  texts = _data(tmp_path, "texts", baseline_views="texts")
  assert texts.steps_per_epoch == paired.steps_per_epoch == 4
  for step in range(texts.steps_per_epoch):
    p, t = paired._train.batch(1, step), texts._train.batch(1, step)
    assert p["input_ids"].shape[0] == 12 and t["input_ids"].shape[0] == 6
    assert t["valid"].all()
    # The same K texts in the same order as the paired batch's first K rows.
    np.testing.assert_array_equal(t["example_index"], p["example_index"][:6])
    np.testing.assert_array_equal(t["labels"], p["labels"][:6])
    width = t["input_ids"].shape[1]
    np.testing.assert_array_equal(t["input_ids"], p["input_ids"][:6, :width])
    assert not p["input_ids"][:6, width:].any() or (p["attention_mask"][:6, width:] == 0).all()
  # No views are made for a texts-only baseline (nothing written to the workdir).
  assert not (tmp_path / "texts" / "augmented_train_views.json").exists()
  assert texts.describe()["training_rows"] == "texts only"
  # LCL always trains on paired batches, whatever baseline_views says.
  lcl = _data(tmp_path, "lcl", objective="lcl", baseline_views="texts")
  assert lcl._train.batch(0, 0)["input_ids"].shape[0] == 12


def _texts_step_losses(tmp_path, tiny_bert_dir, objective, texts_option, *, alpha,
                       temperature, reference_objective, **step_options):
  """(train-step loss on the texts-only batch, `reference_objective(outputs of the
  paired batch's texts rows [0, K), labels)`, train-step loss on the paired batch).

  `texts_option`: the TrainConfig field that makes the batches texts-only
  (`baseline_views` or `lcl_views`); the networks see the same params either way."""
  enc = str(tiny_bert_dir)
  paired = _data(tmp_path, "paired", objective=objective, encoder=enc)
  texts = _data(tmp_path, "texts", objective=objective, encoder=enc,
                **{texts_option: "texts"})
  spec = objectives.get_spec(objective)
  modules, params = objectives.build_networks(
      spec, encoder=enc, weighting_encoder=enc, num_classes=paired.num_classes,
      rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)
  train_step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=alpha, temperature=temperature, multilabel=False,
      dropout_key=jax.random.key(1), use_dropout=False, **step_options))
  state = steps.init_state(params, optimizer)
  p_batch, t_batch = paired._train.batch(0, 0), texts._train.batch(0, 0)
  assert t_batch["input_ids"].shape[0] == 6 and p_batch["input_ids"].shape[0] == 12
  out = objectives.forward(modules, params, p_batch, dropout_key=None, deterministic=True)
  reference, _ = reference_objective({k: v[:6] for k, v in out.items()}, p_batch["labels"][:6])
  return (float(train_step(state, t_batch)[1]["loss"]), float(reference),
          float(train_step(state, p_batch)[1]["loss"]))


def test_baseline_views_texts_loss_is_the_loss_of_the_texts_alone(tmp_path, tiny_bert_dir):
  """The train step's loss on a 'texts' batch equals SCL computed on the texts rows of
  the paired batch (forward once, keep rows [0, K)), and differs from the paired loss."""
  on_texts, reference, on_paired = _texts_step_losses(
      tmp_path, tiny_bert_dir, "scl", "baseline_views", alpha=0.5, temperature=0.3,
      reference_objective=lambda out, labels: losses.scl_objective(
          out["logits"], out["features"], labels, alpha=0.5, temperature=0.3))
  np.testing.assert_allclose(on_texts, reference, rtol=2e-5)
  assert abs(on_paired - reference) > 1e-3


def test_view_seed_fixes_views_across_seeds_but_not_order(tmp_path):
  a = _data(tmp_path, "a", seed=0, view_seed=7, objective="lcl")
  b = _data(tmp_path, "b", seed=1, view_seed=7, objective="lcl")
  va, vb = a._train.views_for_epoch(0), b._train.views_for_epoch(0)
  np.testing.assert_array_equal(va.input_ids, vb.input_ids)
  # The views really are augmented (else equality would be trivial) ...
  assert not np.array_equal(va.input_ids, a._train.texts.input_ids)
  # ... and the data order still follows each run's seed.
  assert not np.array_equal(a._train.epoch_order(0), b._train.epoch_order(0))
  # Default (view_seed=None): the views follow the run's seed, as before.
  c = _data(tmp_path, "c", seed=0, objective="lcl")
  d = _data(tmp_path, "d", seed=1, objective="lcl")
  assert not np.array_equal(c._train.views_for_epoch(0).input_ids,
                            d._train.views_for_epoch(0).input_ids)
  # seed 0 with view_seed=None draws the views of view_seed=0.
  e = _data(tmp_path, "e", seed=3, view_seed=0, objective="lcl")
  np.testing.assert_array_equal(c._train.views_for_epoch(0).input_ids,
                                e._train.views_for_epoch(0).input_ids)
  # Fresh views per epoch follow view_seed too.
  f = _data(tmp_path, "f", seed=0, view_seed=7, objective="lcl", fresh_views_per_epoch=True)
  g = _data(tmp_path, "g", seed=1, view_seed=7, objective="lcl", fresh_views_per_epoch=True)
  for epoch in (0, 1):
    np.testing.assert_array_equal(f._train.views_for_epoch(epoch).input_ids,
                                  g._train.views_for_epoch(epoch).input_ids)


def test_view_seed_and_options_are_validated():
  for field, value in (("view_seed", -1), ("view_seed", 1.5), ("baseline_views", "views"),
                       ("adam_epsilon_mode", "torch"), ("head_init", "xavier")):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
      TrainConfig(**{field: value}).resolved()


def test_seeds_sharing_view_seed_start_from_different_inits(tiny_bert_dir):
  """The trainer initialises the networks from `seed` (not `view_seed`)."""
  enc = str(tiny_bert_dir)
  spec = objectives.get_spec("scl")
  heads = [objectives.build_networks(spec, encoder=enc, weighting_encoder=enc, num_classes=5,
                                     rng=jax.random.key(TrainConfig(seed=s, view_seed=7).seed)
                                     )[1]["primary"]["head"]["label"]["kernel"]
           for s in (0, 1)]
  assert not np.allclose(heads[0], heads[1])


@pytest.mark.parametrize("head_init", ["torch_default", "normal_0.02"])
def test_head_init_draws_from_the_intended_law(tiny_bert_dir, head_init):
  """KS tests of Φ's head parameters against the law each option names (and against
  the other option's law, which must be rejected)."""
  enc = str(tiny_bert_dir)
  spec = objectives.get_spec("ce")
  _, params = objectives.build_networks(spec, encoder=enc, weighting_encoder=enc,
                                        num_classes=7, rng=jax.random.key(0),
                                        head_init=head_init)
  head = params["primary"]["head"]
  hidden = 32  # tiny BERT hidden size = fan_in of pooler_fc and label
  bound = 1.0 / np.sqrt(hidden)
  uniform = stats.uniform(loc=-bound, scale=2 * bound).cdf
  normal = stats.norm(loc=0.0, scale=0.02).cdf
  kernel = np.concatenate([np.ravel(head["pooler_fc"]["kernel"]),
                           np.ravel(head["label"]["kernel"])])
  bias = np.concatenate([np.ravel(head["pooler_fc"]["bias"]), np.ravel(head["label"]["bias"])])
  assert kernel.size == hidden * hidden + hidden * 7
  right, wrong = (uniform, normal) if head_init == "torch_default" else (normal, uniform)
  assert stats.kstest(kernel, right).pvalue > 1e-3
  assert stats.kstest(kernel, wrong).pvalue < 1e-6
  if head_init == "torch_default":
    assert stats.kstest(bias, uniform).pvalue > 1e-3
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > bound / 2
  else:
    assert not bias.any()


def test_a_workdir_written_before_the_new_fields_still_resumes(tmp_path):
  """config.json of a run made before baseline_views/adam_epsilon_mode/view_seed/head_init
  existed: the defaults (that run's behaviour) match; another value is refused by name."""
  import dataclasses
  import json

  from lcl_jax.train import trainer

  cfg = TrainConfig(workdir=str(tmp_path)).resolved()
  old = json.loads(cfg.to_json())
  for name in ("baseline_views", "adam_epsilon_mode", "view_seed", "head_init"):
    del old[name]
  (tmp_path / "config.json").write_text(json.dumps({"config": old}))
  trainer._check_resume_config(tmp_path, cfg)
  with pytest.raises(ValueError, match="adam_epsilon_mode: 'optax' -> 'legacy_hf'"):
    trainer._check_resume_config(tmp_path, dataclasses.replace(cfg, adam_epsilon_mode="legacy_hf"))


def test_run_flags_carry_the_fidelity_options_into_the_config():
  from absl import flags

  import experiments.train  # pylint: disable=unused-import  (defines the run flags)
  from lcl_jax.train import run_flags

  overrides = dict(baseline_views="texts", adam_epsilon_mode="legacy_hf", view_seed=11,
                   head_init="torch_default")
  value = lambda name: overrides.get(name, flags.FLAGS[name].default)
  cfg = run_flags.run_config(value=value, dataset="isear", objective="ce")
  assert (cfg.baseline_views, cfg.adam_epsilon_mode, cfg.view_seed, cfg.head_init) == (
      "texts", "legacy_hf", 11, "torch_default")


# --------------------------------------------------------------------------------------
# Issue 18 items 15-16: seed 001's LCL on the K texts alone, its summed contrastive term.
# --------------------------------------------------------------------------------------


def test_lcl_views_texts_batches_hold_the_k_texts_only(tmp_path):
  paired = _data(tmp_path, "paired", objective="lcl")  # the default: the paper's batches
  texts = _data(tmp_path, "texts", objective="lcl", lcl_views="texts")
  assert paired.describe()["training_rows"] == "texts + augmented views"
  assert texts.describe()["training_rows"] == "texts only"
  for step in range(texts.steps_per_epoch):
    p, t = paired._train.batch(0, step), texts._train.batch(0, step)
    assert p["input_ids"].shape[0] == 12 and t["input_ids"].shape[0] == 6
    np.testing.assert_array_equal(t["example_index"], p["example_index"][:6])
    np.testing.assert_array_equal(t["labels"], p["labels"][:6])
  assert not (tmp_path / "texts" / "augmented_train_views.json").exists()
  assert (tmp_path / "paired" / "augmented_train_views.json").exists()
  # Each option reaches its own objectives only.
  assert _data(tmp_path, "scl", lcl_views="texts")._train.batch(0, 0)["input_ids"].shape[0] == 12
  assert TrainConfig(objective="lcl", baseline_views="texts").trains_on_views
  assert not TrainConfig(objective="lcl", lcl_views="texts").trains_on_views


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_lcl_views_texts_loss_is_lcl_on_the_texts_alone(tmp_path, tiny_bert_dir, reduction):
  """The train step's loss on an lcl_views='texts' batch is LCL (and both CE terms) on
  the K texts alone, with the requested reduction; the paired loss differs."""
  on_texts, reference, on_paired = _texts_step_losses(
      tmp_path, tiny_bert_dir, "lcl", "lcl_views", alpha=0.2, temperature=10.0,
      contrastive_reduction=reduction,
      reference_objective=lambda out, labels: losses.lcl_objective(
          out["logits"], out["weight_logits"], out["features"], labels, alpha=0.2,
          temperature=10.0, reduction=reduction))
  np.testing.assert_allclose(on_texts, reference, rtol=2e-5)
  assert abs(on_paired - reference) > 1e-3


def test_trainer_applies_contrastive_reduction_and_keeps_the_mean_by_default(
    tmp_path, tiny_bert_dir):
  """trainer.train with contrastive_reduction='sum' logs N x the mean's contrastive term
  at the same first step (paired batch: each of the N = 2K = 12 rows has its view as a
  positive), and total = alpha (CE + CE_w) + (1 - alpha) sum; the default is the mean."""
  import json

  from lcl_jax.train import trainer

  def first_step(name, **overrides):
    cfg = TrainConfig(dataset="synthetic", objective="lcl", encoder=str(tiny_bert_dir),
                      workdir=str(tmp_path / name), seed=0, epochs=1, max_train_examples=24,
                      max_eval_examples=8, max_steps_per_epoch=1, texts_per_batch=6,
                      max_length=32, length_buckets=(16, 32), alpha=0.2, temperature=10.0,
                      log_every_steps=1, progress_bar=False, **overrides)
    trainer.train(cfg)
    lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    return next(r for r in map(json.loads, lines) if r["kind"] == "train")

  default = first_step("default")
  mean = first_step("mean", contrastive_reduction="mean")
  summed = first_step("sum", contrastive_reduction="sum")
  assert default["contrastive"] == mean["contrastive"] and default["loss"] == mean["loss"]
  np.testing.assert_allclose(summed["contrastive"], 12 * mean["contrastive"], rtol=1e-5)
  classification = summed["ce"] + summed["weighting_ce"]
  np.testing.assert_allclose(summed["loss"], 0.2 * classification + 0.8 * summed["contrastive"],
                             rtol=1e-6)
  config = json.loads((tmp_path / "sum" / "config.json").read_text())
  assert config["config"]["contrastive_reduction"] == "sum"


def test_seed001_options_are_validated_flags_and_old_workdirs_resume(tmp_path):
  """lcl_views / contrastive_reduction: checked by name, run flags, their choices match
  the losses', and a workdir written before they existed resumes with the defaults."""
  import dataclasses
  import json

  from absl import flags

  import experiments.train  # pylint: disable=unused-import  (defines the run flags)
  from lcl_jax.losses import _checks
  from lcl_jax.train import run_flags, trainer
  from lcl_jax.train import config as config_lib

  assert config_lib.CONTRASTIVE_REDUCTIONS == _checks.REDUCTIONS
  for field, value in (("lcl_views", "views"), ("contrastive_reduction", "max")):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
      TrainConfig(**{field: value}).resolved()
  overrides = dict(lcl_views="texts", contrastive_reduction="sum")
  value = lambda name: overrides.get(name, flags.FLAGS[name].default)
  cfg = run_flags.run_config(value=value, dataset="isear", objective="lcl")
  assert (cfg.lcl_views, cfg.contrastive_reduction) == ("texts", "sum")
  assert (flags.FLAGS["lcl_views"].default, flags.FLAGS["contrastive_reduction"].default) == (
      "paired", "mean")
  cfg = TrainConfig(workdir=str(tmp_path)).resolved()
  old = json.loads(cfg.to_json())
  del old["lcl_views"], old["contrastive_reduction"]
  (tmp_path / "config.json").write_text(json.dumps({"config": old}))
  trainer._check_resume_config(tmp_path, cfg)
  with pytest.raises(ValueError, match="contrastive_reduction: 'mean' -> 'sum'"):
    trainer._check_resume_config(tmp_path, dataclasses.replace(cfg, contrastive_reduction="sum"))
