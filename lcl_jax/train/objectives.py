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

Rows: LCL trains on paired batches (K texts + K augmented views), as the release's
`train.py`; its classification terms cover all 2K rows. The release has no baseline
script of its own: the CE/SCL `train_baseline.py` that also trains on the paired
views comes from an unmerged third-party pull request to the release repo, and the
paper does not say. `TrainConfig.baseline_views` selects 'paired' (that script's
reading, the default) or 'texts' (K texts, no views) for ce/scl/bert_ce; the losses
below simply cover every valid row of the batch they are given.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from lcl_jax import losses


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  name: str
  primary_head: str  # head kind for lcl_jax.models.build_classifier
  uses_weighting_network: bool
  loss: str  # 'ce' | 'scl' | 'lcl'


OBJECTIVE_SPECS: dict[str, ObjectiveSpec] = {
    "ce": ObjectiveSpec("ce", "paper", False, "ce"),
    "scl": ObjectiveSpec("scl", "paper", False, "scl"),
    "lcl": ObjectiveSpec("lcl", "paper", True, "lcl"),
    "bert_ce": ObjectiveSpec("bert_ce", "bert", False, "ce"),
}

# TrainConfig.head_init -> lcl_jax.models head init scheme (see heads.dense_initializers).
_HEAD_INIT_SCHEMES = {"normal_0.02": "hf", "torch_default": "torch"}


def get_spec(objective: str) -> ObjectiveSpec:
  try:
    return OBJECTIVE_SPECS[objective]
  except KeyError:
    raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVE_SPECS)}") from None


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
  """
  from lcl_jax import models  # Heavy import kept out of module import time.
  from lcl_jax.models import baselines
  from lcl_jax.train.data_pipeline import resolve_checkpoint

  def build_baseline(name: str, key: jax.Array):
    matrix = None
    if glove_path and name != "charcnn":
      from lcl_jax.data import glove
      matrix, found = glove.embedding_matrix(glove_path, tokenizer.get_vocab(),
                                             pad_token_id=tokenizer.pad_token_id)
      logging.getLogger("lcl_jax.train").info(
          "GloVe %s: %d of %d vocabulary words found", glove_path, found, len(matrix))
    return baselines.build_baseline(name, vocab_size=len(tokenizer), num_classes=num_classes,
                                     rng=key, embedding_matrix=matrix)

  primary_rng, weighting_rng = jax.random.split(rng)
  modules, params = {}, {}
  if baselines.is_baseline(encoder):
    modules["primary"], params["primary"] = build_baseline(encoder, primary_rng)
    if spec.uses_weighting_network:
      modules["weighting"], params["weighting"] = build_baseline(weighting_encoder,
                                                                 weighting_rng)
    return modules, params
  if head_init not in _HEAD_INIT_SCHEMES:
    raise ValueError(f"head_init={head_init!r}; expected one of {sorted(_HEAD_INIT_SCHEMES)}")
  primary_init = _HEAD_INIT_SCHEMES[head_init] if spec.primary_head == "paper" else "hf"
  primary_checkpoint = models.load_checkpoint(resolve_checkpoint(encoder))
  modules["primary"], params["primary"] = models.build_classifier(
      primary_head or spec.primary_head, primary_checkpoint, num_classes, rng=primary_rng,
      dtype=dtype, remat=remat, head_init=primary_init, classifier_dropout=classifier_dropout,
      feature_pooling=feature_pooling)
  if spec.uses_weighting_network:
    weighting_checkpoint = (primary_checkpoint if weighting_encoder == encoder
                            else models.load_checkpoint(resolve_checkpoint(weighting_encoder)))
    modules["weighting"], params["weighting"] = models.build_classifier(
        models.weighting_head_for(weighting_checkpoint.config), weighting_checkpoint,
        num_classes, rng=weighting_rng, dtype=dtype, remat=remat)
  return modules, params


def forward(
    modules: Mapping[str, Any],
    params: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    *,
    dropout_key: jax.Array | None,
    deterministic: bool,
) -> dict[str, jax.Array]:
  """Runs every network on the batch rows.

  Returns `logits` [R, C] and `features` [R, H] of Φ, and `weight_logits` [R, C]
  of Ψ when the objective has one. A batch with `mix_cls` [R, H] and `mix_weight` [R]
  (inference-time embedding mixing, `lcl_jax.train.mixing`) mixes Φ's [CLS] state
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
    else:
      outputs["weight_logits"] = out.logits
  return outputs


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
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The objective's scalar loss and its components, over all valid rows.

  `contrastive`: None (dense) or a `lcl_jax.tiled_losses.Contrastive` (tiled / ring).
  """
  if spec.loss == "ce":
    return losses.ce_objective(outputs["logits"], labels, valid=valid, multilabel=multilabel)
  if spec.loss == "scl":
    return losses.scl_objective(
        outputs["logits"], outputs["features"], labels, alpha=alpha,
        temperature=temperature, valid=valid, multilabel=multilabel, contrastive=contrastive)
  if spec.loss == "lcl":
    return losses.lcl_objective(
        outputs["logits"], outputs["weight_logits"], outputs["features"], labels,
        alpha=alpha, temperature=temperature, valid=valid, multilabel=multilabel,
        contrastive=contrastive)
  raise ValueError(f"unknown loss {spec.loss!r}")
