"""Tiny random transformers models built from configs in memory, with an in-memory
byte-level BPE tokenizer: no files, no network, milliseconds to build."""

from __future__ import annotations

from functools import cache

CORPUS = [
    "Classify this review: I loved this movie! Sentiment: Positive",
    "Classify this review: I don't like this chair. Sentiment: Negative",
    "The cat sat on the mat. The dog sat on the log.",
    "Attention is all you need. Transformers attend to every token.",
    "Héllo wörld, naïve café — emoji 🙂 and symbols ∑ ≠ →.",
]


@cache
def byte_level_tokenizer(vocab_size: int = 300):
    """A PreTrainedTokenizerFast with a byte-level BPE trained on CORPUS (causal models)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", unk_token="<|endoftext|>")


@cache
def wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer ([CLS] … [SEP]) trained on CORPUS."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(CORPUS, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _seeded(builder):
    import torch

    torch.manual_seed(0)
    model = builder()
    model.eval()
    return model


def tiny_gpt2(n_positions: int = 64):
    """GPT-2: learned absolute positions, 2 layers x 4 heads."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = len(byte_level_tokenizer())
    config = GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0,
                        attn_implementation="eager")
    return _seeded(lambda: GPT2LMHeadModel(config))


def tiny_llama(max_positions: int = 128):
    """Llama: RoPE, grouped-query attention (4 query heads share 2 key/value heads), 3 layers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = len(byte_level_tokenizer())
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_positions, rope_theta=10000.0,
                         attn_implementation="eager", tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=0, pad_token_id=None)
    return _seeded(lambda: LlamaForCausalLM(config))


def tiny_gemma3(sliding_window: int = 8, max_positions: int = 256):
    """Gemma 3: 6 layers, five sliding-window (``sliding_window``) then one full layer, 4 query
    heads sharing 1 key/value head, a query pre-attention scalar (scale 24^-0.5, not
    head_dim^-0.5), local and global RoPE bases, and final logit soft-capping."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    vocab = len(byte_level_tokenizer())
    config = Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=1,
                              head_dim=16, sliding_window=sliding_window, query_pre_attn_scalar=24,
                              max_position_embeddings=max_positions, final_logit_softcapping=30.0,
                              attn_implementation="eager", bos_token_id=0, eos_token_id=0,
                              pad_token_id=0)
    return _seeded(lambda: Gemma3ForCausalLM(config))


def tiny_bloom():
    """BLOOM: ALiBi attention computed inside its own module (no attention interface)."""
    from transformers import BloomConfig, BloomForCausalLM

    vocab = len(byte_level_tokenizer())
    config = BloomConfig(vocab_size=vocab, hidden_size=32, n_layer=2, n_head=4,
                         attn_implementation="eager", bos_token_id=0, eos_token_id=0)
    return _seeded(lambda: BloomForCausalLM(config))


def tiny_bert():
    """BERT encoder: bidirectional attention, learned positions, 2 layers x 2 heads."""
    from transformers import BertConfig, BertModel

    vocab = len(wordpiece_tokenizer())
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        attn_implementation="eager")
    return _seeded(lambda: BertModel(config))


def tiny_t5():
    """T5 encoder-decoder: relative position bias, 2 encoder + 3 decoder layers x 4 heads."""
    from transformers import T5Config, T5ForConditionalGeneration

    vocab = len(byte_level_tokenizer())
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                      num_decoder_layers=3, num_heads=4, relative_attention_num_buckets=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=0,
                      attn_implementation="eager", architectures=["T5ForConditionalGeneration"])
    return _seeded(lambda: T5ForConditionalGeneration(config))


def tiny_bart():
    """BART encoder-decoder: learned positions, 2 encoder + 2 decoder layers x 4 heads."""
    from transformers import BartConfig, BartForConditionalGeneration

    vocab = len(byte_level_tokenizer())
    config = BartConfig(vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4,
                        encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0, decoder_start_token_id=0,
                        forced_eos_token_id=None, attn_implementation="eager",
                        architectures=["BartForConditionalGeneration"])
    return _seeded(lambda: BartForConditionalGeneration(config))


def loaded(kind: str):
    """A LoadedModel for "gpt2", "llama", "llama-long", "gemma3", "bloom", "bert", "t5" or "bart"."""
    from explorer.backend.loader import LoadedModel

    if kind == "gpt2":
        return LoadedModel.from_objects(tiny_gpt2(), byte_level_tokenizer(), "tiny-gpt2")
    if kind == "llama":
        return LoadedModel.from_objects(tiny_llama(), byte_level_tokenizer(), "tiny-llama")
    if kind == "llama-long":  # the same tiny Llama with a 4,096-token context
        return LoadedModel.from_objects(tiny_llama(4096), byte_level_tokenizer(), "tiny-llama-long")
    if kind == "gemma3":
        return LoadedModel.from_objects(tiny_gemma3(), byte_level_tokenizer(), "tiny-gemma3")
    if kind == "bloom":
        return LoadedModel.from_objects(tiny_bloom(), byte_level_tokenizer(), "tiny-bloom")
    if kind == "bert":
        return LoadedModel.from_objects(tiny_bert(), wordpiece_tokenizer(), "tiny-bert")
    if kind == "t5":
        return LoadedModel.from_objects(tiny_t5(), byte_level_tokenizer(), "tiny-t5")
    if kind == "bart":
        return LoadedModel.from_objects(tiny_bart(), byte_level_tokenizer(), "tiny-bart")
    raise ValueError(kind)
