"""Live event streams to canvas clients (SSE), one channel per flow."""
