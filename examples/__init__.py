"""Examples a developer copies: each a tested namespace (tests/test_examples.py), quoted in the README."""
