"""Preprocessing stages: intensity normalisation now; reorientation, registration and brain extraction later."""
