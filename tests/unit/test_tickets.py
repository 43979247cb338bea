"""The ended-ticket cache: a late `resume` still hears the last word, for a while, within a size."""

from __future__ import annotations

from hub.guard import ticket_key
from hub.tickets import Ended, Tickets


def remember(cache: Tickets, keys: list[str], n: int, now: float) -> None:
    cache.remember(keys, f"i{n}", "chesscom", f"p{n}", f'{{"type":"done","n":{n}}}', now)


def test_minted_tickets_are_filed_under_their_key() -> None:
    secret, key = Tickets.mint()
    other, _ = Tickets.mint()
    assert key == ticket_key(secret) and secret != other and len(secret) >= 32


def test_the_last_word_expires_by_time() -> None:
    cache = Tickets(keep_s=60.0)
    remember(cache, ["a", "b"], 1, now=100.0)  # two tickets followed import 1
    remember(cache, ["c"], 2, now=130.0)
    hit = cache.lookup("a", 159.0)
    assert hit == Ended(160.0, "i1", "chesscom", "p1", '{"type":"done","n":1}')
    assert cache.lookup("b", 159.0) == hit
    assert cache.lookup("a", 160.0) is None  # expired, even before it is pruned
    assert cache.lookup("c", 160.0) is not None
    cache.prune(160.0)
    assert sorted(cache.ended) == ["c"]
    cache.prune(190.0)
    assert cache.ended == {}
    assert cache.lookup("nope", 0.0) is None


def test_remembering_again_renews_and_moves_to_the_back() -> None:
    cache = Tickets(keep_s=10.0)
    remember(cache, ["a"], 1, now=0.0)
    remember(cache, ["b"], 2, now=5.0)
    remember(cache, ["a"], 3, now=8.0)  # the same ticket ends again (a later import)
    assert list(cache.ended) == ["b", "a"]  # still in order of expiry
    cache.prune(15.0)
    assert list(cache.ended) == ["a"]
    hit = cache.lookup("a", 17.0)
    assert hit is not None and hit.import_id == "i3"


def test_the_cache_is_bounded_by_size() -> None:
    cache = Tickets(keep_s=3600.0, limit=100)
    for n in range(250):
        remember(cache, [f"t{n}"], n, now=float(n))
        assert len(cache.ended) <= 100
    # The oldest go first; the newest hundred are all there.
    assert list(cache.ended) == [f"t{n}" for n in range(150, 250)]
    assert cache.lookup("t149", 250.0) is None
    assert cache.lookup("t150", 250.0) is not None
    # One import followed by more tickets than the bound keeps the newest of them.
    remember(cache, [f"many{k}" for k in range(150)], 999, now=300.0)
    assert len(cache.ended) == 100
    assert all(key.startswith("many") for key in cache.ended)
