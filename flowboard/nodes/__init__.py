"""Node types of the canvas: one module each, listed in `registry.NODE_TYPES`."""
