"""Training: episode windows from the dataset, and the training loop that makes a checkpoint."""
