"""Applications of fitted maps: learned-feature models and the experiment pipelines built on them."""
