"""Evaluation entry points: inference, metrics on its predictions, MostPop, the report and the paired statistics."""
