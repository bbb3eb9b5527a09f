"""Applications of fitted maps to data a user has: colour transfer, 2-D toy experiments, ..."""
