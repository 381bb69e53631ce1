"""Tests written once against the client; tests/_sync/ is generated from them."""
