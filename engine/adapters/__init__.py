"""I/O at the edges: thin transports over the sans-I/O cores (HTTP server for SCEP, ...)."""
