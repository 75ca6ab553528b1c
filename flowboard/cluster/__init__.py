"""Several servers on one database: which servers are there (the stream log is in streams/)."""
