"""The local model store: the catalog of known models, where they live, and their state on disk."""
