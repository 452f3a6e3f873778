"""Serving the API with uvicorn (``ferry api``), against the Prefect server in ``PREFECT_API_URL``."""

from __future__ import annotations


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False)
