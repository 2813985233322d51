"""atlas-forge: the Atlas-Chat recipe (arXiv 2409.17912) as a declarative, rebuildable pipeline."""

__version__ = "0.1.0"
