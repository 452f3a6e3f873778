"""Prefect blocks: where exports go and where imports come from.

Every destination implements :class:`blocks.destination.Destination`; the
registry in :mod:`blocks.registry` lists them by block type slug.
"""
