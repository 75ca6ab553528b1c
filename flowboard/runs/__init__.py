"""A run's life: planning, scheduling, processing a node, recording its state."""
