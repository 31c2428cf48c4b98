"""lcl_jax: Label-aware Contrastive Loss (Suresh & Ong, EMNLP 2021) in JAX/Flax.

The top-level package re-exports only the pure losses and objectives, so that
``from lcl_jax import lcl_loss`` stays light (no Flax models, data pipelines or
trainer are imported). Those live in ``lcl_jax.models``, ``lcl_jax.data`` and
``lcl_jax.train``; host-side metrics in ``lcl_jax.metrics``.
"""

from lcl_jax.losses import (
    ce_objective,
    lcl_loss,
    lcl_objective,
    multilabel_lcl_loss,
    multilabel_supcon_loss,
    scl_objective,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    supcon_loss,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ce_objective",
    "lcl_loss",
    "lcl_objective",
    "multilabel_lcl_loss",
    "multilabel_supcon_loss",
    "scl_objective",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "supcon_loss",
]
