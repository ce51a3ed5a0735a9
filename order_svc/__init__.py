"""The order service: orders for known users, and their change feed."""
