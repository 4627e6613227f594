"""Attention Explorer: look inside transformer language models while typing prompts.

Layers: ``explorer.core`` (numpy data and analysis), ``explorer.backend``
(torch/transformers, the only place they are imported) and ``explorer.gui`` (Qt).

For notebooks::

    from explorer.backend import load_model, analyze
    model = load_model("smollm2")
    result = analyze(model, "Classify this review: I loved it. Sentiment:")
    from explorer.core.attention import head_map
    head_map(result, layer=3, head=2)   # float32[query, key], for full and lazy runs alike
"""

__version__ = "0.1.0"
