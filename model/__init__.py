"""The built-in denoiser's training recipe: corpus generator, tokenizer training, model sizes, and two trainers.

``python -m model.train`` trains on a CPU into ``constrained/checkpoint``, which
``constrained.default_model.load_default()`` loads; ``python -m model.build_bundle`` then ``python -m
model.train_bundle`` train on a GPU machine (``model/README.md``).
"""
