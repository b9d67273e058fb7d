"""Trust: GDPR access and erasure, retention, and model cards.

This layer sits above :mod:`assoc_ai_core.jobs`: it reads and rewrites the
job's state store and model registry through their own methods.
"""
