"""Messages from the engine and the store, reworded for a person at the window.

The engine speaks to the command line ("use --device cpu"); in the window the same advice names
the control to change. One table, so the CLI keeps its wording and the GUI gets its own.
"""

from __future__ import annotations

import re

from ..core.vocabulary import Vocabulary

_GUI_ADVICE = (
    (re.compile(r";?\s*use --device cpu"), ": choose Device “cpu” in File ▸ Settings"),
    (re.compile(r"--device (\w+)"), r"Device “\1” in File ▸ Settings"),
    (re.compile(r"--backend (\w+)"), r"Backend “\1” in File ▸ Settings"),
    (re.compile(r"--model"), "the model folder in File ▸ Settings"),
)
_TOO_LONG = re.compile(r"the prompt is longer than (\d+) tokens; its end was ignored")


def for_the_window(message: str, vocabulary: Vocabulary | None = None) -> str:
    """``message`` with command-line advice replaced by the window's controls, and the token
    limit said in words (the embedded model reads whole words)."""
    for pattern, replacement in _GUI_ADVICE:
        message = pattern.sub(replacement, message)
    too_long = _TOO_LONG.search(message)
    if too_long:
        if vocabulary is not None and vocabulary.max_words is not None:
            words = f"only the first {vocabulary.max_words} words of a prompt"
        else:
            tokens = int(too_long.group(1))
            words = f"about the first {tokens * 3 // 4} words of a prompt ({tokens} tokens)"
        message = _TOO_LONG.sub(f"this model reads {words}; the rest was ignored", message)
    return message[:1].upper() + message[1:]
