from indexer.chunker import chunk_text, split_sentences

EN = (
    "Layers are like transparent sheets. You paint on each one! Does it work? Yes; it does.\n"
    "Version 2.10 adds groups (see e.g. the manual). The end."
)
ZH = "图层就像一叠透明的纸。你可以在每个图层上绘画！这样行吗？可以；当然可以。“引号里的句子。”最后一句"


def test_sentences_split_on_both_languages_punctuation_and_keep_offsets():
    spans = split_sentences(ZH)
    parts = [ZH[s:e] for s, e in spans]
    assert parts == [
        "图层就像一叠透明的纸。", "你可以在每个图层上绘画！", "这样行吗？", "可以；", "当然可以。", "“引号里的句子。”", "最后一句",
    ]
    en_parts = [EN[s:e] for s, e in split_sentences(EN)]
    assert en_parts[:5] == ["Layers are like transparent sheets.", "You paint on each one!", "Does it work?", "Yes;", "it does."]
    # a decimal point and "e.g." without a following space do not end a sentence
    assert any(p.startswith("Version 2.10 adds groups") for p in en_parts)


def test_chunks_respect_budget_cover_text_and_overlap(tiny_encoder):
    sentence = "the quick brown fox jumps over the lazy dog."
    per_sentence = tiny_encoder.count_tokens([sentence])[0]
    budget = 3 * per_sentence + 2
    text = "\n".join([sentence] * 30)
    chunks = chunk_text(text, tiny_encoder, max_tokens=budget, overlap_tokens=per_sentence + 1)
    assert len(chunks) > 10
    real = tiny_encoder.count_tokens([text[c.start : c.end] for c in chunks])
    assert max(real) <= budget + 2, real  # packing sums sentence counts; joins may differ by a token
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end, "consecutive chunks overlap by a sentence"
        assert b.start > a.start


def test_no_overlap_when_disabled(tiny_encoder):
    text = " ".join(f"Sentence {i} is here." for i in range(50))
    chunks = chunk_text(text, tiny_encoder, max_tokens=30, overlap_tokens=0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_a_sentence_longer_than_the_budget_is_cut_at_token_boundaries(tiny_encoder):
    text = "图层" * 300  # one long "sentence" with no punctuation
    chunks = chunk_text(text, tiny_encoder, max_tokens=50, overlap_tokens=0)
    assert len(chunks) > 2
    assert "".join(text[c.start : c.end] for c in chunks) == text
    assert all(c.n_tokens <= 50 for c in chunks)


def test_short_text_is_one_chunk(tiny_encoder):
    chunks = chunk_text("  Hello world.  ", tiny_encoder)
    assert [(c.start, c.end) for c in chunks] == [(2, 14)]
