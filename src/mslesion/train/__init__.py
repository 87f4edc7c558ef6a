"""Training: configuration, splits, patch sampling, augmentation, the training loop."""
