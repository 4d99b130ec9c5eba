"""Anti-aliasing fixes: BlurPool layers and ``antialias(model)``."""
