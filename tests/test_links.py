"""`Link` pagination: follow rel="next", and never to a host the source was not pointed at."""

from __future__ import annotations

from collector.http import next_link, origin_of

BASE = origin_of("https://api.github.com/search/code?q=x")


def test_the_next_page_is_followed_as_the_server_gives_it() -> None:
    header = (
        '<https://api.github.com/search/code?q=x&page=2>; rel="next", '
        '<https://api.github.com/search/code?q=x&page=34>; rel="last"'
    )
    assert next_link(header, BASE) == "https://api.github.com/search/code?q=x&page=2"


def test_no_next_relation_ends_the_paging() -> None:
    assert next_link('<https://api.github.com/search/code?q=x&page=1>; rel="prev"', BASE) == ""
    assert next_link("", BASE) == ""


def test_a_next_page_on_another_host_is_refused_so_the_token_stays_home() -> None:
    header = '<https://evil.example/steal?page=2>; rel="next"'
    assert next_link(header, BASE) == ""
