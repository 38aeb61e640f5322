"""Reserved for the store issue (see ARCHITECTURE.md)."""
