"""The local target: a small cloud on one machine (PostgreSQL, a queue, the runtime)."""
