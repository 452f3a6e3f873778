"""Ferry's Prefect flows."""
