"""Test fixture: crashes at once, like an entry with a bug."""

raise SystemExit("training failed: CUDA out of memory (simulated)")
