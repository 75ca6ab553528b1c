"""Video generation providers behind one `VideoProvider` protocol."""
