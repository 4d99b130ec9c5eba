"""Static core: model -> graph -> findings. Imports neither pytest nor rich."""
