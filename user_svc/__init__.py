"""The user service: users, and the change feed other services follow."""
