"""Store generated media: local files or an S3-compatible bucket behind one `Storage` protocol."""
