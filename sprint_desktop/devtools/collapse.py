"""Telling a collapsed training run from a noisy one, and where it resumes from.

On 2026-11-27 (session 6) the teacher ran on an H200 at batch 512 and lr 2.8e-3 (1e-3 x
sqrt(512 / 64)). Its EMA's validation loss fell for 2,400 steps, 0.178 -> 0.131 (compliance 0.53 ->
0.63), then the raw weights blew up (training loss 0.06 -> 1.7) and one evaluation later the EMA had
followed them: validation loss 1.39, compliance 0.00. Every minute's checkpoint had replaced the
one before in ``$OUT``, so the good ones were lost with the machine.

The signal is the EMA's validation loss: the flow-matching loss on a fixed batch with fixed noise
and times (`distill.train_teacher.validation_loss`), so it moves only when the weights do, unlike
the judge's compliance on 128 sampled images. A loss above ``ratio`` x the best one so far, or not
finite, is a collapse. A checkpoint written between evaluations (the one a stop writes) has only
the training loss of its last batch, noisy (0.05-0.1 at batch 256-512) but 30x up in that collapse:
above ``loss_ratio`` x the lowest so far is a collapse too. Anything else is training noise. The
caller keeps the last checkpoint that passed (`GOOD`), sends no collapsed one, and resumes from the
good one at a lower learning rate (`gpu_train.run_stoppable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

GOOD = "good.pt"
"""Beside ``checkpoint.pt``: a copy of the last checkpoint whose evaluation passed."""


@dataclass
class CollapseGuard:
    ratio: float = 1.5
    """A validation loss above this x the best so far is a collapse (the 2026-11-27 one: 10.6x)."""
    loss_ratio: float = 10.0
    """A training loss above this x the lowest so far is a collapse (that one: 30x)."""
    best: float | None = None
    lowest_loss: float | None = None
    collapses: list[dict[str, Any]] = field(default_factory=list)

    def collapsed(self, record: dict[str, Any]) -> bool:
        """Whether the log ``record`` of a step shows a collapse; a record with neither loss never
        does. The same record may be asked about again."""
        val, loss = record.get("val_loss"), record.get("loss")
        bad = _above(val, self.best, self.ratio) or _above(loss, self.lowest_loss, self.loss_ratio)
        if bad:
            event = {"step": record.get("step"), "val_loss": val, "loss": loss, "best": self.best}
            if event not in self.collapses:
                self.collapses.append(event)
            return True
        if val is not None:
            self.best = float(val) if self.best is None else min(self.best, float(val))
        if loss is not None:
            self.lowest_loss = float(loss) if self.lowest_loss is None else min(self.lowest_loss, float(loss))
        return False


def _above(value: Any, reference: float | None, ratio: float) -> bool:
    """``value`` is not finite, or above ``ratio`` x ``reference`` (None: no value, no reference)."""
    if value is None:
        return False
    value = float(value)
    return not math.isfinite(value) or (reference is not None and value > ratio * reference)
