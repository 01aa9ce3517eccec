"""Shared code for every SPRec stage: data, prompts, models, generation, metrics, I/O."""
