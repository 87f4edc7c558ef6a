"""From probabilities to lesions: threshold, size filter, lesion table."""
