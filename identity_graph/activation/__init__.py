"""Activation: destinations that receive audience changes, and the durable outbox of their
deliveries (committed with the change that causes them)."""
