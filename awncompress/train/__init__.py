"""The fine-tune stage: settings, losses, the KD teacher, batching and the training loop."""
