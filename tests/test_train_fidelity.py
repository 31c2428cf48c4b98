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


def test_baseline_views_texts_loss_is_the_loss_of_the_texts_alone(tmp_path, tiny_bert_dir):
  """The train step's loss on a 'texts' batch equals SCL computed on the texts rows of
  the paired batch (forward once, keep rows [0, K)), and differs from the paired loss."""
  enc = str(tiny_bert_dir)
  paired = _data(tmp_path, "paired", encoder=enc, baseline_views="paired")
  texts = _data(tmp_path, "texts", encoder=enc, baseline_views="texts")
  spec = objectives.get_spec("scl")
  modules, params = objectives.build_networks(
      spec, encoder=enc, weighting_encoder=enc, num_classes=paired.num_classes,
      rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=1e-3, total_steps=10)

  train_step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
      dropout_key=jax.random.key(1), use_dropout=False))
  state = steps.init_state(params, optimizer)

  def step_loss(batch):
    return float(train_step(state, batch)[1]["loss"])

  p_batch, t_batch = paired._train.batch(0, 0), texts._train.batch(0, 0)
  out = objectives.forward(modules, params, p_batch, dropout_key=None, deterministic=True)
  reference, _ = losses.scl_objective(out["logits"][:6], out["features"][:6],
                                      p_batch["labels"][:6], alpha=0.5, temperature=0.3)
  np.testing.assert_allclose(step_loss(t_batch), float(reference), rtol=2e-5)
  assert abs(step_loss(p_batch) - float(reference)) > 1e-3


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
