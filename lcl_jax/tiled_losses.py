"""Former home of the tiled / ring contrastive losses, now :mod:`lcl_jax.losses.tiled`.

Kept so that ``from lcl_jax import tiled_losses`` keeps working: this module *is*
``lcl_jax.losses.tiled`` (the same module object, so attributes and monkeypatches are
shared).
"""
import sys

from lcl_jax.losses import tiled as _tiled

sys.modules[__name__] = _tiled
