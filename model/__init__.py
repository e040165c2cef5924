"""The built-in denoiser: corpus generator, tokenizer training, tiny DiffusionGemma config, training recipe.

``python -m model.train`` rebuilds ``model/checkpoint``; ``constrained.default_model.load_default()`` loads it.
"""
