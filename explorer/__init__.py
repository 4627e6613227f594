"""Attention Explorer: look inside transformer language models while typing prompts.

Layers: ``explorer.core`` (numpy data and analysis), ``explorer.backend``
(torch/transformers, the only place they are imported) and ``explorer.gui`` (Qt).

For notebooks::

    from explorer.backend import load_model, analyze
    model = load_model("smollm2")
    result = analyze(model, "Classify this review: I loved it. Sentiment:")
    result.attentions.shape   # float16[layer, head, query, key]
"""

__version__ = "0.1.0"
