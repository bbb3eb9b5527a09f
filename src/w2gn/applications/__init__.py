"""Applications of fitted maps to real data, one module per application: style transfer, domain adaptation,
latent-space OT (with the feature models they need), colour transfer, toy experiments."""
