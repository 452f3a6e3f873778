"""Ferry: import and export pipelines for customer data, orchestrated by Prefect 3.

This package holds the shared domain code every stage uses: the resource
catalog, the store schema, settings, the error hierarchy and the CLI. The
pipeline itself lives in the top-level ``flows/``, ``tasks/`` and ``blocks/``.
"""

__version__ = "0.1.0"
