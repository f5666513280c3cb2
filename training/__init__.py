"""Encoder training and evaluation on English–Chinese parallel data.

Evaluation (`evaluate`) comes first so every model, the base included, is measured the same way.
"""
