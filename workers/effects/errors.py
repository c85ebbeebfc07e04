"""How an effect tells its task whether to retry."""

from __future__ import annotations


class TransientEffectError(RuntimeError):
    """Worth retrying later: a remote service was down, slow or rate-limiting."""


class PermanentEffectError(RuntimeError):
    """Retrying cannot help (refused request, missing configuration); recorded as failed at once."""


class NotReadyError(RuntimeError):
    """The effect's inputs are still arriving (e.g. the last transcript turns); try again shortly."""
