"""Activation: delivering audience changes to destinations, and exporting audiences."""
