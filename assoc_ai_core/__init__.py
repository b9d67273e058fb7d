"""assoc-ai core: learn an association's own mail categories, classify, explain, hand doubt to a human."""

__version__ = "0.1.0"
