"""MongoDB connection, the embedded server, and collection set-up."""
