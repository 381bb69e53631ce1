"""greycloud's pure core: request building, retry rules, token estimates, batch lines, cache
rules and grounding text. Nothing here does I/O; both generated client halves, the CLI and the
emulator build on it."""
