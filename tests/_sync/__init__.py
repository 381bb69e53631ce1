# DO NOT EDIT: generated from tests/_async/__init__.py by tools/generate.py.
# Change tests/_async/__init__.py and run `make generate`.
# output-sha256: 980cd67748cf0e0c
"""Tests written once against the client; tests/_sync/ is generated from them."""
