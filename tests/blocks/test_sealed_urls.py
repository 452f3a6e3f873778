"""A signed import URL is sealed into a Secret block; an idempotent request's retries seal it to the same block."""

from __future__ import annotations

URL = "https://files.example.com/contacts.csv?sig=secret-token-1"


def _sealed_names(prefix: str) -> list[str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return [b.name for b in client.read_block_documents() if b.name.startswith(prefix)]


def test_a_retried_request_seals_its_url_to_the_same_block_and_another_url_to_another():
    from blocks.sealed_urls import PREFIX, forget, seal, unseal

    key = "ferry-api:acme:3:retry-me"
    first, again = seal(URL, key=key), seal(URL, key=key)
    other_url = seal(URL.replace("token-1", "token-2"), key=key)
    other_key = seal(URL, key=key + "-2")
    plain, plain_again = seal(URL), seal(URL)

    assert first == again  # the run's parameters match the first attempt's: Prefect hands back that run
    assert len({first, other_url, other_key, plain, plain_again}) == 5
    for sealed in (first, other_url, other_key, plain):
        assert "secret-token" not in sealed and sealed.startswith("https://files.example.com/contacts.csv?ferry-sealed=")
    assert unseal(first) == URL and unseal(other_url) == URL.replace("token-1", "token-2")
    names = {s.rsplit("=", 1)[1] for s in (first, other_url, other_key, plain, plain_again)}
    assert names <= set(_sealed_names(PREFIX))
    for sealed in (first, other_url, other_key, plain, plain_again):
        forget(sealed)
    assert not names & set(_sealed_names(PREFIX))
