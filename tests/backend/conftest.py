"""Backend fixtures live in tests/conftest.py."""
