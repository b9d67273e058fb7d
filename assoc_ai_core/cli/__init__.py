"""The ``assoc-ai`` command line: one module per command group.

The CLI uses only the public functions of the layers below; heavy modules
are imported inside each command, so ``assoc-ai --help`` stays fast.
"""

# The entry point is assoc_ai_core.cli.main:main; each group lives in its own module.
__all__: list[str] = []
