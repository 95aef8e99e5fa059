"""The pure core shared by every function: validation, SQL, the queue interface."""
