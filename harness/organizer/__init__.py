"""The organizer's commands: validate entries, grade many of them, check against a baseline, rank them."""
