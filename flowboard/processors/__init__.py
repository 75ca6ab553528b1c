"""One processor per runnable node type."""
