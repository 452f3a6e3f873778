"""The relational store Ferry reads and writes (SQLAlchemy 2 Core)."""
