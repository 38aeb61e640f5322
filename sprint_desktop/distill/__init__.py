"""Reserved for the distill issue (see ARCHITECTURE.md)."""
