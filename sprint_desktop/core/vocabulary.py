"""What a model can read: its word list (for word-level tokenizers like the embedded model's), the
number of words it reads, and example prompts, so the app can say so before it draws nonsense.

Read from the model folder's files (``tokenizer/tokenizer.json``, ``sprint_desktop.json``) with the
standard library: no tokenizer library is imported. An open-vocabulary model (a BPE tokenizer such
as SANA-Sprint's Gemma) has no word list: nothing is flagged, only the length is explained.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_SETTINGS_FILE = "sprint_desktop.json"
TOKENIZER_FILE = Path("tokenizer") / "tokenizer.json"
_WORD = re.compile(r"\w+|[^\w\s]+")  # the tokenizers library's `Whitespace` pre-tokenizer


@dataclass(frozen=True)
class Vocabulary:
    words: frozenset[str] | None
    """Every word the model knows (lower case), or None when its vocabulary is open."""
    max_words: int | None
    """How many words of a prompt the model reads (None: unknown)."""
    examples: tuple[str, ...] = ()
    """Prompts the model draws well, for the user to click."""

    def split(self, prompt: str) -> list[str]:
        """The prompt's tokens as the tokenizer splits them (words and runs of punctuation)."""
        return _WORD.findall(prompt.lower())

    def unknown_words(self, prompt: str) -> list[str]:
        """The prompt's words this model does not know, once each, in order."""
        if self.words is None:
            return []
        words = (w for w in self.split(prompt) if w not in self.words and w[0].isalnum())  # not "," or "!"
        return list(dict.fromkeys(words))

    def hint(self, prompt: str) -> str:
        """One line for the user about ``prompt``: unknown words or too many words; "" when fine."""
        parts = []
        unknown = self.unknown_words(prompt)
        if unknown:
            shown = ", ".join(f"“{w}”" for w in unknown[:5]) + (" …" if len(unknown) > 5 else "")
            parts.append(
                f"This model does not know {shown}: it will ignore {'it' if len(unknown) == 1 else 'them'}."
            )
        count = len(self.split(prompt)) if self.words is not None else None
        if self.max_words is not None and count is not None and count > self.max_words:
            parts.append(
                f"It reads only the first {self.max_words} words; the last {count - self.max_words} are cut off."
            )
        return " ".join(parts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_vocabulary(folder: str | Path, max_tokens: int | None = None) -> Vocabulary:
    """The vocabulary of the model in ``folder``; ``max_tokens`` is the model's text length in
    tokens (the engine's ``max_sequence_length``); the specials the tokenizer adds are subtracted."""
    folder = Path(folder)
    settings = _read_json(folder / MODEL_SETTINGS_FILE)
    listed = settings.get("example_prompts")
    examples = (
        tuple(p for p in listed if isinstance(p, str) and p.strip()) if isinstance(listed, list) else ()
    )
    tokenizer = _read_json(folder / TOKENIZER_FILE)
    model = tokenizer.get("model")
    model = model if isinstance(model, dict) else {}
    words: frozenset[str] | None = None
    if model.get("type") == "WordLevel" and isinstance(model.get("vocab"), dict):
        specials = {t.get("content") for t in tokenizer.get("added_tokens", []) if isinstance(t, dict)}
        words = frozenset(w.lower() for w in model["vocab"] if w not in specials)
    max_words = None
    if max_tokens is not None and words is not None:
        max_words = max(1, max_tokens - _added_specials(tokenizer))
    return Vocabulary(words, max_words, examples)


def _added_specials(tokenizer: dict[str, Any]) -> int:
    """How many special tokens the tokenizer adds to one text (e.g. 1 for a leading <bos>)."""
    post = tokenizer.get("post_processor")
    if isinstance(post, dict) and isinstance(post.get("single"), list):
        return sum(1 for part in post["single"] if isinstance(part, dict) and "SpecialToken" in part)
    return 0
