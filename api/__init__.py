"""Ferry's HTTP API: a front end over the same service functions the CLI calls (``deployments/``, ``ferry/``).

Routers translate HTTP into service calls and results into JSON; they hold no
business logic. ``create_app()`` builds the application; ``ferry api`` serves it.
"""
