"""A tiny random-weight encoder built in-test, so unit tests never need the real model.

Same shape of folder as the converted default (BERT + unigram tokenizer + sentence-transformers
modules + query/passage prompts), 32-dimensional, a few hundred KB, built in about a second.
Its vectors are meaningless across languages, but identical texts get identical vectors, which
is all the plumbing tests need.
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "search engines rank documents by relevance to a query",
    "install the package, then index the folder and search it",
    "layers masks brushes colors selection tool image window",
    "快速的棕色狐狸跳过了懒狗",
    "搜索引擎按照与查询的相关性对文档进行排序",
    "安装软件包，然后索引文件夹并进行搜索",
    "图层 蒙版 画笔 颜色 选择工具 图像 窗口",
    "query: passage: 0123456789 .,;:!?。，；：！？（）()[]{}<>\"'-_/\\@#$%^&*+=~`|",
]


TOKENIZER = Path(__file__).parent / "data" / "tiny-tokenizer.json"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_tokenizer(corpus: list[str] = _CORPUS):
    """A Unigram tokenizer over `corpus`. The default one is trained once and committed
    (TOKENIZER): the trainer picks the same pieces every run but not the same ids (a parallel
    sum, a hash map's order), so training it in-test would change every vector, and every
    ranking, from one run to the next."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    chars = sorted({c for line in corpus for c in line})
    trainer = trainers.UnigramTrainer(vocab_size=600, special_tokens=SPECIALS, unk_token="<unk>", initial_alphabet=chars)
    tok.train_from_iterator(corpus * 20, trainer=trainer)
    return tok


def build_tiny_model(dest: Path, corpus: list[str] | None = None) -> Path:
    """The tiny encoder in `dest`; with `corpus`, its tokenizer is trained on that text instead."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from tokenizers import Tokenizer, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    dest = Path(dest)
    hf_dir = dest / "hf"
    tok = train_tokenizer(corpus) if corpus else Tokenizer.from_file(str(TOKENIZER))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>", model_max_length=128,
    )
    config = BertConfig(
        vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=130, pad_token_id=fast.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=128)
    model = SentenceTransformer(
        modules=[transformer, Pooling(32, "mean"), Normalize()],
        prompts={"query": "query: ", "passage": "passage: "},
    )
    out = dest / "tiny-encoder"
    model.save(str(out))
    return out


if __name__ == "__main__":  # python -m tests.tiny_model: retrain the committed tokenizer
    train_tokenizer().save(str(TOKENIZER))
