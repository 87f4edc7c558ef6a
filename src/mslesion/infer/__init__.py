"""Whole-volume inference: sliding windows, blending, test-time flips."""
