"""The model's vocabulary, read from its folder's files (the embedded model and a BPE stand-in)."""

from __future__ import annotations

import json

from sprint_desktop.core.paths import project_root
from sprint_desktop.core.vocabulary import read_vocabulary

EMBEDDED = project_root() / "models" / "sprint-shapes"


def test_the_embedded_model_knows_its_grammar_words_and_reads_15():
    vocab = read_vocabulary(EMBEDDED, max_tokens=16)
    assert {"red", "circle", "left", "crosses"} <= vocab.words and "<bos>" not in vocab.words
    assert vocab.max_words == 15  # 16 tokens, one of them the <bos> the tokenizer adds
    assert vocab.unknown_words("A Cat on a sofa, a cat!") == ["cat", "on", "sofa"]
    assert vocab.hint("a red circle") == ""
    assert "first 15 words" in vocab.hint(" ".join(["red"] * 16))
    assert all(not vocab.unknown_words(p) for p in vocab.examples) and len(vocab.examples) >= 3


def test_an_open_vocabulary_flags_nothing_and_a_missing_folder_is_empty(tmp_path):
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": {}}})
    )
    vocab = read_vocabulary(tmp_path, max_tokens=300)
    assert vocab.words is None and vocab.hint("a cat on a sofa") == "" and vocab.max_words is None
    assert read_vocabulary(tmp_path / "missing").examples == ()
