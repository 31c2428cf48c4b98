"""The objective registry: one `ObjectiveSpec` per --objective, carrying what the run
builds and minimises (Φ's head, whether the weighting network Ψ exists, the loss).

Adding an objective = one entry of `OBJECTIVE_SPECS` (its loss function below). Light on
purpose (JAX and the pure losses, no Flax or data): `config.OBJECTIVES` is derived from
this registry while binaries parse flags; the networks are built by
`lcl_jax.train.objectives.build_networks` from these entries.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax

from lcl_jax import losses

# (outputs, labels, valid, *, alpha, temperature, multilabel, contrastive, reduction)
#   -> (scalar loss, components): an objective's own loss L_main (`objectives.forward`'s
# outputs: logits [R, C], features [R, H], weight_logits [R, C] with Ψ).
MainLoss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def ce_main_loss(outputs: Mapping[str, jax.Array], labels: jax.Array, valid: jax.Array, *,
                 alpha: float, temperature: float, multilabel: bool, contrastive: Any,
                 reduction: str) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy (sigmoid BCE multi-label) of Φ's logits (`losses.ce_objective`)."""
  del alpha, temperature, contrastive, reduction  # not CE's
  return losses.ce_objective(outputs["logits"], labels, valid=valid, multilabel=multilabel)


def scl_main_loss(outputs: Mapping[str, jax.Array], labels: jax.Array, valid: jax.Array, *,
                  alpha: float, temperature: float, multilabel: bool, contrastive: Any,
                  reduction: str) -> tuple[jax.Array, dict[str, jax.Array]]:
  """alpha * CE + (1 - alpha) * SupCon on Φ's features (`losses.scl_objective`)."""
  return losses.scl_objective(
      outputs["logits"], outputs["features"], labels, alpha=alpha,
      temperature=temperature, valid=valid, multilabel=multilabel, contrastive=contrastive,
      reduction=reduction)


def lcl_main_loss(outputs: Mapping[str, jax.Array], labels: jax.Array, valid: jax.Array, *,
                  alpha: float, temperature: float, multilabel: bool, contrastive: Any,
                  reduction: str) -> tuple[jax.Array, dict[str, jax.Array]]:
  """alpha * (L_w + L_e) + (1 - alpha) * L_LCL with Ψ's logits as the weights
  (`losses.lcl_objective`)."""
  return losses.lcl_objective(
      outputs["logits"], outputs["weight_logits"], outputs["features"], labels,
      alpha=alpha, temperature=temperature, valid=valid, multilabel=multilabel,
      contrastive=contrastive, reduction=reduction)


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """One --objective.

  Attributes:
    name: the --objective name.
    primary_head: Φ's head kind for `lcl_jax.models.build_classifier`: ``'paper'`` means
      "the run's --head" (`primary_head_for`); another kind is fixed by the objective.
    uses_weighting_network: the objective trains Ψ beside Φ (its ``weight_logits``).
    loss: the loss family's name (``'ce'`` | ``'scl'`` | ``'lcl'``).
    main_loss: the implementation of L_main (`MainLoss`).
    views_setting: the TrainConfig field that says whether its batches hold the K
      augmented views beside the K texts: ``'baseline_views'``, or ``'lcl_views'`` for
      LCL (paired by default, as the release's train.py; seed 001: the texts alone).
  """
  name: str
  primary_head: str
  uses_weighting_network: bool
  loss: str
  main_loss: MainLoss = dataclasses.field(repr=False, compare=False)
  views_setting: str = "baseline_views"

  def primary_head_for(self, head: str) -> str:
    """Φ's head kind under ``--head=head``: ``head`` where the objective takes the paper's
    head, else the objective's own (bert_ce: ``'bert'``)."""
    return head if self.primary_head == "paper" else self.primary_head


OBJECTIVE_SPECS: dict[str, ObjectiveSpec] = {
    "ce": ObjectiveSpec("ce", "paper", False, "ce", ce_main_loss),
    "scl": ObjectiveSpec("scl", "paper", False, "scl", scl_main_loss),
    "lcl": ObjectiveSpec("lcl", "paper", True, "lcl", lcl_main_loss,
                         views_setting="lcl_views"),
    "bert_ce": ObjectiveSpec("bert_ce", "bert", False, "ce", ce_main_loss),
}


def get_spec(objective: str) -> ObjectiveSpec:
  """The registry entry of ``objective``.

  Raises:
    ValueError: an unknown name (the known ones listed).
  """
  try:
    return OBJECTIVE_SPECS[objective]
  except KeyError:
    raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVE_SPECS)}") from None
