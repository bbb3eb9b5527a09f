"""Applications of fitted maps to real data (one module per application)."""
