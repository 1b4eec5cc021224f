"""Test fixture: trains (pretends to) but never saves anything in HAET_CHECKPOINTS."""

print("trained, but forgot to save")
