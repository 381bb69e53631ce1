# DO NOT EDIT: a copy of _async_src/__init__.py by tools/generate.py.
# Change _async_src/__init__.py and run `make generate`.
# output-sha256: 721437a676e28aa2
"""greycloud's client code; its hand-written source is _async_src/."""
