"""Reserved for the export issue (see ARCHITECTURE.md)."""
