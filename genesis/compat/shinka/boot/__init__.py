"""The folder ``genesis shinka`` puts first on ``PYTHONPATH`` (its ``sitecustomize``)."""
