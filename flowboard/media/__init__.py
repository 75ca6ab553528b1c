"""Media toolkit: local rendering, posters, probing and content sniffing."""
