"""Data-only package holding the built-in denoiser's checkpoint (written by ``python -m model.train``).

It is a package only so that a non-editable ``pip install .`` ships its ``*.json`` and ``*.safetensors`` files.
"""
