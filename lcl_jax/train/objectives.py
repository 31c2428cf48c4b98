"""The fine-tuning objectives: which networks a run trains and the loss it minimises.

* `ce`      — primary encoder Φ with the paper's head, cross-entropy.
* `scl`     — Φ, alpha * CE + (1 - alpha) * SupCon on Φ's [CLS] (Gunel et al. 2021,
              whose lambda = 1 - alpha weights SupCon; alpha as in the third-party
              baseline script of the release, see BUILD_NOTES "SCL vs CE").
* `lcl`     — Φ plus the weighting network Ψ (ELECTRA sequence-classification head;
              RoBERTa's for a RoBERTa-family weighting checkpoint);
              alpha * (L_w + L_e) + (1 - alpha) * L_LCL with Ψ's logits as the weights
              (the paper's Eq. 6; the release's loss_1 + loss_2).
* `bert_ce` — BertForSequenceClassification head (pooler), cross-entropy (Table 1's
              "BERT-base + CE" row).
Multi-label datasets use the same objectives with sigmoid BCE and the multi-label
contrastive losses (`multilabel=True`).

Auxiliary task (seed 004, Section 3.2; `TrainConfig.aux_task`): Φ carries a second head
on its encoder (`aux_logits` [R, G], coarse GoEmotions groups) and any objective above
becomes L = T * L_main + (1 - T) * L_aux, L_main the objective's loss, L_aux the sigmoid
BCE of the auxiliary head (mean over valid rows and groups, the rows of L_main: views
included), T = `aux_weight(step)` growing from `aux_weight_start` to `aux_weight_end`.

Rows: LCL trains on paired batches (K texts + K augmented views), as the release's
`train.py`; its classification terms cover all 2K rows (`TrainConfig.lcl_views='texts'`:
the K texts alone, seed 001's LCL). The release has no baseline
script of its own: the CE/SCL `train_baseline.py` that also trains on the paired
views comes from an unmerged third-party pull request to the release repo, and the
paper does not say. `TrainConfig.baseline_views` selects 'paired' (that script's
reading, the default) or 'texts' (K texts, no views) for ce/scl/bert_ce; the losses
below simply cover every valid row of the batch they are given.

Reduction: the SCL/LCL term is the mean over its anchors (the paper) or, with
`contrastive_reduction='sum'` (`TrainConfig.contrastive_reduction`), their sum (seed
001's formulas); see `lcl_jax.losses`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax import losses, models
from lcl_jax.data import glove, goemotions
from lcl_jax.models import baselines
# The registry (light: config.py derives OBJECTIVES from it at --help time), re-exported.
from lcl_jax.train.objective_specs import (OBJECTIVE_SPECS, ObjectiveSpec,  # noqa: F401
                                           get_spec)
from lcl_jax.train.data_pipeline import resolve_checkpoint


# TrainConfig.head_init -> lcl_jax.models head init scheme (see heads.dense_initializers).
_HEAD_INIT_SCHEMES = {"normal_0.02": "hf", "torch_default": "torch"}


def build_networks(
    spec: ObjectiveSpec,
    *,
    encoder: str,
    weighting_encoder: str,
    num_classes: int,
    rng: jax.Array,
    dtype: Any = jnp.float32,
    remat: bool = False,
    head_init: str = "normal_0.02",
    primary_head: str | None = None,
    classifier_dropout: float | None = None,
    feature_pooling: str = "cls",
    tokenizer: Any = None,
    glove_path: str | None = None,
    label_layout: Any = None,
    num_aux_classes: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
  """Builds `({'primary': module[, 'weighting': module]}, params)` from checkpoints.

  `head_init` (`TrainConfig.head_init`) initialises the paper's Φ head (`pooler_fc`,
  `label`): 'normal_0.02' (transformers' `_init_weights`: normal(initializer_range),
  0.02 for every checkpoint used here; zero bias) or 'torch_default' (`nn.Linear`'s
  default, as the release). The ELECTRA head of Ψ and the BERT baseline's head are
  transformers classes in the release, initialised by `_init_weights` (normal 0.02).
  `primary_head` replaces the paper head of Φ ('direct', 'dense1', 'dense2'; issue 9,
  initialised by `head_init` too) and `classifier_dropout` sets Φ's head dropout (None:
  the head's default).
  `feature_pooling` ('cls' | 'mean') chooses Φ's contrastive features. A baseline
  encoder name (bilstm, gru, rnn, charcnn; `lcl_jax.models.baselines`) builds that
  network freshly initialised instead, its vocabulary from `tokenizer` (the data
  pipeline's) and, for the word models, its embeddings from `glove_path` if given.

  `label_layout` (a `lcl_jax.models.LabelLayout`; `--label_embeddings`, issue 10)
  makes Φ a label-attention classifier (seed 004 Section 3.3: each label's score from
  its own positions in the label-prefixed rows; auxiliary groups in the layout add the
  Section 3.5.1 auxiliary scorer). With LCL, Ψ is one too (see `label_layout_for`): its
  label-position scores are the weight logits.
  `num_aux_classes` G > 0 gives Φ the auxiliary head (params `aux_head`; transformer
  encoders only).
  """
  primary_rng, weighting_rng = jax.random.split(rng)
  if baselines.is_baseline(encoder):
    if num_aux_classes:
      raise ValueError(f"the auxiliary head needs a transformer encoder, not {encoder}")
    return _build_baselines(spec, (encoder, weighting_encoder), (primary_rng, weighting_rng),
                            num_classes=num_classes, tokenizer=tokenizer,
                            glove_path=glove_path)
  if head_init not in _HEAD_INIT_SCHEMES:
    raise ValueError(f"head_init={head_init!r}; expected one of {sorted(_HEAD_INIT_SCHEMES)}")
  primary_init = _HEAD_INIT_SCHEMES[head_init] if spec.primary_head == "paper" else "hf"
  primary_checkpoint = models.load_checkpoint(resolve_checkpoint(encoder))
  head, layout = network_head("primary", primary_head or spec.primary_head, label_layout)
  modules, params = {}, {}
  modules["primary"], params["primary"] = models.build_classifier(
      head, primary_checkpoint, num_classes, rng=primary_rng, dtype=dtype, remat=remat,
      head_init=primary_init, classifier_dropout=classifier_dropout,
      feature_pooling=feature_pooling, num_aux_classes=num_aux_classes, label_layout=layout)
  if spec.uses_weighting_network:
    weighting_checkpoint = (primary_checkpoint if weighting_encoder == encoder
                            else models.load_checkpoint(resolve_checkpoint(weighting_encoder)))
    head, layout = network_head("weighting",
                                models.weighting_head_for(weighting_checkpoint.config),
                                label_layout)
    modules["weighting"], params["weighting"] = models.build_classifier(
        head, weighting_checkpoint, num_classes, rng=weighting_rng, dtype=dtype,
        remat=remat, label_layout=layout)
  return modules, params


def _build_baselines(spec: ObjectiveSpec, encoders: tuple[str, str | None],
                     rngs: tuple[jax.Array, jax.Array], *, num_classes: int, tokenizer: Any,
                     glove_path: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
  """`build_networks` for a baseline encoder: Φ (and Ψ) freshly initialised, the
  vocabulary from `tokenizer`, the word models' embeddings from `glove_path` if given."""
  modules, params = {}, {}
  names = ("primary", "weighting") if spec.uses_weighting_network else ("primary",)
  for network, name, key in zip(names, encoders, rngs):
    matrix = None
    if glove_path and name != "charcnn":
      matrix = glove.run_embeddings(glove_path, tokenizer.get_vocab(),
                                    pad_token_id=tokenizer.pad_token_id)
    modules[network], params[network] = baselines.build_baseline(
        name, vocab_size=len(tokenizer), num_classes=num_classes, rng=key,
        embedding_matrix=matrix)
  return modules, params


def network_head(network: str, head: str, label_layout: Any) -> tuple[str, Any]:
  """``(head kind, label layout or None)`` of a network ('primary' Φ or 'weighting' Ψ)
  whose head is ``head`` without label embeddings: with a `label_layout`
  (--label_embeddings) every network is a label-attention classifier, Ψ on its
  `weighting_layout` (shared by `build_networks` and the predictor's shapes)."""
  if label_layout is None:
    return head, None
  return "label_attention", (label_layout if network == "primary"
                             else weighting_layout(label_layout))


def label_layout_for(block: Any, aux_membership: Any = None) -> Any:
  """The `models.LabelLayout` of a run's label block (`PreparedData.label_block`).

  `aux_membership`: None, or the int/bool [C, G] matrix saying which coarse groups each
  of the C labels belongs to (an auxiliary task, Section 3.5.1); group g's auxiliary
  score then pools the label vectors of its members.
  """
  groups = ()
  if aux_membership is not None:
    membership = np.asarray(aux_membership) > 0
    if membership.ndim != 2 or membership.shape[0] != block.num_labels:
      raise ValueError(f"aux_membership must be [{block.num_labels}, G], got "
                       f"{membership.shape}")
    groups = [tuple(np.flatnonzero(membership[:, g]).tolist())
              for g in range(membership.shape[1])]
  return models.LabelLayout.from_block(block, aux_groups=groups)


def aux_membership(cfg: Any) -> Any:
  """The auxiliary task's int32 [28, G] label -> group matrix
  (`goemotions.coarse_mapping`), or None without one (`aux_task == 'none'`)."""
  if getattr(cfg, "aux_task", "none") == "none":
    return None
  return goemotions.coarse_mapping(cfg.aux_task, cfg.data_dir)


def weighting_layout(layout: Any) -> Any:
  """Ψ's layout under LCL with label embeddings: Φ's without the auxiliary groups.

  The construction (beyond seed 004, which has no LCL): Ψ reads the same label-prefixed
  rows and scores label c from the last hidden state(s) of label c's own tokens, through
  its own scorer; those C scores are Ψ's logits, so LCL's weights softmax(Ψ) (the
  paper's Eq. 5-6, unchanged in `losses.lcl_objective`) say how strongly each label's
  token, having attended to the text, claims the example — the label tokens act as
  learned class queries of the weighting network. The auxiliary task stays Φ's.
  """
  return dataclasses.replace(layout, aux_groups=())


# The batch entries the networks read (`forward`; plus `mix_cls` / `mix_weight` when
# evaluating with embedding mixing).
NETWORK_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def forward(
    modules: Mapping[str, Any],
    params: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    *,
    dropout_key: jax.Array | None,
    deterministic: bool,
) -> dict[str, jax.Array]:
  """Runs every network on the batch rows.

  Returns `logits` [R, C] and `features` [R, H] of Φ, `aux_logits` [R, G] of Φ's
  auxiliary head when it has one, and `weight_logits` [R, C] of Ψ when the objective
  has one. A batch with `mix_cls` [R, H] (or [R, P, H]) and `mix_weight` [R]
  (inference-time embedding mixing, `lcl_jax.train.mixing`) mixes Φ's leading state(s)
  before its head.
  """
  outputs = {}
  for index, name in enumerate(sorted(modules)):
    rngs = {}
    if not deterministic:
      rngs = {"dropout": jax.random.fold_in(dropout_key, index)}
    mix = ({"mix_cls": batch["mix_cls"], "mix_weight": batch["mix_weight"]}
           if name == "primary" and "mix_cls" in batch else {})
    out = modules[name].apply(
        {"params": params[name]}, batch["input_ids"], batch["attention_mask"],
        batch.get("token_type_ids"), deterministic=deterministic, rngs=rngs, **mix)
    if name == "primary":
      outputs["logits"], outputs["features"] = out.logits, out.features
      if getattr(out, "aux_logits", None) is not None:
        outputs["aux_logits"] = out.aux_logits
    else:
      outputs["weight_logits"] = out.logits
  return outputs


def forward_rows(
    modules: Mapping[str, Any],
    params: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    *,
    dropout_key: jax.Array | None,
    row_index: jax.Array,
    deterministic: bool,
) -> dict[str, jax.Array]:
  """`forward` with each row's dropout masks drawn from its own key
  `fold_in(dropout_key, row_index[r])` (int [R]: the rows' indices in the global batch).

  A row's outputs then depend on that row and its index only, never on which other rows
  share the pass: the property gradient caching needs (`steps.cached_loss_and_grads`
  re-runs the rows chunk by chunk and must draw the same masks). Implemented as
  `jax.vmap` of `forward` over one-row batches (XLA batches the matmuls back together).
  Deterministic (no dropout): exactly `forward`.
  """
  if deterministic:
    return forward(modules, params, batch, dropout_key=None, deterministic=True)
  inputs = {name: batch[name] for name in NETWORK_INPUTS if batch.get(name) is not None}

  def one_row(row: Mapping[str, jax.Array], index: jax.Array) -> dict[str, jax.Array]:
    outputs = forward(modules, params, jax.tree.map(lambda x: x[None], row),
                      dropout_key=jax.random.fold_in(dropout_key, index), deterministic=False)
    return jax.tree.map(lambda x: x[0], outputs)

  return jax.vmap(one_row)(inputs, row_index)


def loss_from_outputs(
    spec: ObjectiveSpec,
    outputs: Mapping[str, jax.Array],
    labels: jax.Array,
    valid: jax.Array,
    *,
    alpha: float,
    temperature: float,
    multilabel: bool,
    contrastive: Any = None,
    aux_labels: jax.Array | None = None,
    aux_weight: jax.Array | float | None = None,
    contrastive_reduction: str = "mean",
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The objective's scalar loss and its components, over all valid rows.

  `contrastive`: None (the public losses, impl='auto') or a `lcl_jax.losses.Contrastive`.
  `contrastive_reduction`: the SCL/LCL term over its anchors, 'mean' or 'sum' (the
  losses' `reduction`; `TrainConfig.contrastive_reduction`).
  With `aux_labels` (int [R, G] multi-hot; `outputs` then hold `aux_logits` [R, G]) and
  `aux_weight` T (a scalar in [0, 1]), the loss is T * L_main + (1 - T) * L_aux (seed
  004's Eq. 1), L_aux the sigmoid BCE of the auxiliary head; the components then add
  `main_loss`, `aux_loss` and `aux_weight`.
  """
  main, components = _main_loss(spec, outputs, labels, valid, alpha=alpha,
                                temperature=temperature, multilabel=multilabel,
                                contrastive=contrastive, reduction=contrastive_reduction)
  if aux_labels is None:
    return main, components
  if aux_weight is None or "aux_logits" not in outputs:
    raise ValueError("aux_labels need outputs['aux_logits'] (a network built with "
                     "num_aux_classes) and an aux_weight")
  aux = losses.sigmoid_binary_cross_entropy(outputs["aux_logits"], aux_labels, valid=valid)
  weight = jnp.asarray(aux_weight, main.dtype)
  total = weight * main + (1.0 - weight) * aux.astype(main.dtype)
  return total, {**components, "main_loss": main, "aux_loss": aux, "aux_weight": weight,
                 "total": total}


def aux_weight(step: jax.Array | int, *, start: float, end: float, total_steps: int,
               schedule: str = "linear") -> jax.Array:
  """T of seed 004's Eq. 1 for the update that starts from `step` (0-based: the state's
  update count), float32.

  T(0) = `start`, T(total_steps - 1) = `end` and T = `end` after (e.g. the stage 2 of
  two-stage training); in between `schedule` 'linear' ((1 - f) * start + f * end,
  f = step / (total_steps - 1)) or 'cosine' (f replaced by the half-cosine ramp
  (1 - cos(pi f)) / 2: flat at both ends, so the auxiliary task keeps its weight longer
  at first). One step (total_steps = 1): T = `start`. Works under jit (`step` traced).

  Raises:
    ValueError: total_steps < 1 or an unknown schedule.
  """
  if total_steps < 1:
    raise ValueError(f"total_steps={total_steps} must be >= 1")
  if schedule not in ("linear", "cosine"):
    raise ValueError(f"schedule={schedule!r}; expected 'linear' or 'cosine'")
  fraction = jnp.clip(jnp.asarray(step, jnp.float32) / max(total_steps - 1, 1), 0.0, 1.0)
  if total_steps == 1:
    fraction = jnp.zeros_like(fraction)
  if schedule == "cosine":
    fraction = (1.0 - jnp.cos(math.pi * fraction)) / 2.0
  # (1 - f) * start + f * end: exactly `start` at f = 0 and `end` at f = 1.
  return ((1.0 - fraction) * start + fraction * end).astype(jnp.float32)


def aux_weight_schedule(start: float, end: float, total_steps: int,
                        schedule: str = "linear") -> Callable[[jax.Array], jax.Array]:
  """`step -> aux_weight(step, ...)` with the settings bound (for the train step)."""
  aux_weight(0, start=start, end=end, total_steps=total_steps, schedule=schedule)  # checks
  return lambda step: aux_weight(step, start=start, end=end, total_steps=total_steps,
                                 schedule=schedule)


def _main_loss(spec, outputs, labels, valid, *, alpha, temperature, multilabel, contrastive,
               reduction):
  """The objective's own loss (L_main) and components: its registry entry's `main_loss`."""
  return spec.main_loss(outputs, labels, valid, alpha=alpha, temperature=temperature,
                        multilabel=multilabel, contrastive=contrastive, reduction=reduction)
