"""Test helpers for assoc-ai and its plugins (a pytest plugin, loaded automatically).

The connector conformance kit lives in :mod:`assoc_ai_core.conformance`.
"""
