"""Engines (transformers + peft, vLLM), tokenizers and the model registry; nothing above them."""
