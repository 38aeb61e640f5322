"""Keep a student's best-judged weights and notice a collapse that its loss does not show.

The sCM loss can fall smoothly while every sample turns blank (session 8: judge 0.21 / 0.38 / 0.49
at step 750, 0.00 at 1 / 2 / 4 steps by 1,000, the loss -0.41 -> -0.64). The run's own evaluation
at 1 / 2 / 4 steps is what sees it: its mean is the score, a new best is saved beside the run, and
a score of 0 after a positive best is a collapse (the run stops without overwriting its checkpoint).
The teacher's counterpart, on validation and training losses, is `devtools.collapse`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEST = "best"


def score(rec: dict[str, Any]) -> float | None:
    """The mean of an evaluation record's ``judge_{n}step`` values; None when it has none."""
    judges = [v for k, v in rec.items() if k.startswith("judge_") and k.endswith("step")]
    return sum(judges) / len(judges) if judges else None


@dataclass
class Best:
    step: int = 0
    score: float = -1.0  # below any judge: the first evaluation is the first best

    @classmethod
    def load(cls, out: Path) -> Best:
        path = out / BEST / "best.json"
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, out: Path) -> None:
        (out / BEST / "best.json").write_text(json.dumps({"step": self.step, "score": self.score}))


def verdict(best: Best, rec: dict[str, Any]) -> str | None:
    """``"best"`` when the record beats ``best``, ``"collapse"`` when its judges are all 0 after a
    positive best, else None (no evaluation in it, or neither)."""
    s = score(rec)
    if s is None:
        return None
    if s == 0.0 and best.score > 0.0:
        return "collapse"
    return "best" if s > best.score else None


def collapse_message(out: Path, best: Best, step: int) -> str:
    return (
        f"student collapsed at step {step}: judge 0 at every step count after {best.score:.3f} at "
        f"step {best.step}; its checkpoint was not overwritten, the best weights are in "
        f"{out / BEST / 'transformer'} (to train on anyway, delete {out / BEST / 'best.json'})"
    )
