"""Links: a profile page (LinkedIn, GitHub, Indeed's `/r/`, X, Stack Overflow users...), a
personal site (`janedoe.dev`, a domain made of a first and last name, a link after
`Portfolio:`) is a `URL`; any other link is a `LINK`, kept unless it spells the name of one of
the record's people (the anonymizer decides that once it knows them all).

A profile link names its user (`linkedin.com/in/jane-doe-6102`): that user name is the span's
`detail`, evidence of a name for the record.
"""

from __future__ import annotations

import re

from processors.anonymize.lexicon import NameLexicon
from processors.anonymize.spans import LINK, URL, Context, Span, lines_of

_split = str.split

_URL = re.compile(
    r"(?<![\w@/.])(?:(?:https?://|www\.)[^\s<>\"'`)\]}]+"
    r"|(?:[a-z0-9-]+\.)*(?:linkedin\.com|github\.com|gitlab\.com|bitbucket\.org|twitter\.com|"
    r"x\.com|facebook\.com|instagram\.com|medium\.com|behance\.net|dribbble\.com|kaggle\.com|"
    r"stackoverflow\.com|indeed\.com|about\.me|angel\.co|wellfound\.com|leetcode\.com|hackerrank\.com|"
    r"codepen\.io|dev\.to|substack\.com|github\.io|gitlab\.io|netlify\.app|vercel\.app|"
    r"pages\.dev|herokuapp\.com|wordpress\.com|blogspot\.com|wixsite\.com|carrd\.co)"
    r"(?:/[^\s<>\"'`)\]}]*)?"
    r"|[a-z0-9][a-z0-9-]{1,40}\.(?:me|dev|name|page|site|website|portfolio|blog)"
    r"(?:/[^\s<>\"'`)\]}]*)?)"
    r"(?<![.,;:!?])",
    re.IGNORECASE,
)
_PROFILE_HOSTS = re.compile(
    r"(?:^|\.)(?:linkedin\.com|github\.com|gitlab\.com|bitbucket\.org|twitter\.com|x\.com|"
    r"facebook\.com|fb\.com|instagram\.com|medium\.com|behance\.net|dribbble\.com|kaggle\.com|"
    r"stackoverflow\.com|stackexchange\.com|indeed\.com|about\.me|angel\.co|wellfound\.com|leetcode\.com|"
    r"hackerrank\.com|codepen\.io|dev\.to|substack\.com|github\.io|gitlab\.io|netlify\.app|"
    r"vercel\.app|pages\.dev|herokuapp\.com|wordpress\.com|blogspot\.com|wixsite\.com|"
    r"carrd\.co|tiktok\.com|youtube\.com|threads\.net|mastodon\.social|linktr\.ee|calendly\.com)$"
)
_DOT_LETTER = re.compile(r"\.[A-Za-z]")
# A host-like word in lowercased text: a known profile site, or a word, a dot and a
# personal-site ending. The sites are plain substring tests: one regex of them all tries each
# of them at every character, many times slower.
_HOST_WORDS = tuple(
    _split(
        "linkedin github gitlab bitbucket twitter x.com facebook instagram medium behance "
        "dribbble kaggle stackoverflow indeed about.me angel.co wellfound leetcode hackerrank "
        "codepen dev.to substack netlify vercel pages.dev herokuapp wordpress blogspot wixsite "
        "carrd"
    )
)
# The dot first: the regex engine skips from dot to dot.
_PERSONAL_SITE = re.compile(r"\.(?<=[a-z0-9]\.)(?:me|dev|name|page|site|website|portfolio|blog)\b")


def _host_hint(low: str) -> bool:
    for word in _HOST_WORDS:
        if word in low:
            return True
    return _PERSONAL_SITE.search(low) is not None


_PERSONAL_TLD = re.compile(r"\.(?:me|dev|name|page|site|website|portfolio|blog)$")
_URL_CUE = re.compile(
    r"(?:portfolio|website|web site|homepage|home page|personal site|blog|site|web)\s*[:\-–]\s*$",
    re.IGNORECASE,
)
_HOST = re.compile(r"^(?:https?://)?(?:www\.)?([^/:?#\s]+)", re.IGNORECASE)
# Paths of a profile host that belong to an organisation, a product or a project, not a person.
_ORGANISATION_PATH = re.compile(
    r"^/(?:company|school|showcase|jobs|cmp|viewjob|career|pulse|groups|events|learning|feed|pages|topics|"
    r"questions|q|tags|datasets|competitions|code|models|docs|orgs|marketplace|features|about|"
    r"blog|explore|search|watch|hashtag|i|help|legal|policies|settings)(?:/|$)",
    re.IGNORECASE,
)
# Hosts whose first path segment is a person (the user) unless it is an organisation path.
_USER_HOSTS = re.compile(
    r"(?:^|\.)(?:github\.com|gitlab\.com|bitbucket\.org|twitter\.com|x\.com|facebook\.com|"
    r"fb\.com|instagram\.com|medium\.com|behance\.net|dribbble\.com|kaggle\.com|about\.me|"
    r"angel\.co|wellfound\.com|leetcode\.com|hackerrank\.com|codepen\.io|dev\.to|tiktok\.com|"
    r"youtube\.com|threads\.net|mastodon\.social|linktr\.ee|calendly\.com)$"
)
# Where the user sits deeper: linkedin.com/in/USER, indeed.com/r/USER,
# stackoverflow.com/users/ID/USER
_USER_PATHS = re.compile(
    r"^/(?:in|pub|r|users/\d+|u|user|profile|people|@)/?([^/?#\s]+)", re.IGNORECASE
)
# Code hosts: OWNER/REPO is a project (kept unless OWNER spells a name); OWNER alone is a person.
_CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")
_PATH = re.compile(r"^(?:https?://)?[^/?#\s]+(/[^?#\s]*)?", re.IGNORECASE)


def _title(word: str) -> str:
    return word.capitalize()


class LinkDetector:
    kind = URL

    def __init__(self, lexicon: NameLexicon | None) -> None:
        self.lexicon = lexicon

    def find(self, text: str, context: Context) -> list[Span]:
        # A host needs a dot before a letter.
        if "." not in text or not ("://" in text or _DOT_LETTER.search(text)):
            return []
        low = text.lower()
        if not ("://" in low or "www." in low or _host_hint(low)):
            return []
        spans: list[Span] = []
        for at, line in lines_of(text):
            if "." not in line:
                continue
            low = line.lower()
            if not ("://" in low or "www." in low or _host_hint(low)):
                continue
            for match in _URL.finditer(line):
                url = match.group(0)
                host_match = _HOST.match(url)
                host = host_match.group(1).lower() if host_match else ""
                path_match = _PATH.match(url)
                path = (path_match.group(1) or "") if path_match else ""
                kind, user = self._classify(host, path, context)
                start = match.start()
                if kind == LINK and _URL_CUE.search(line, max(0, start - 20), start):
                    kind = URL
                spans.append(Span(at + start, at + match.end(), kind, user))
        return spans

    def _classify(self, host: str, path: str, context: Context) -> tuple[str, str]:
        """(URL or LINK, the user name the link spells or "")."""
        segments = [s for s in path.split("/") if s]
        if _PROFILE_HOSTS.search(host) and segments:
            if _ORGANISATION_PATH.match(path):
                return LINK, ""
            user_path = _USER_PATHS.match(path)
            if user_path is not None:
                return URL, user_path.group(1)
            if _USER_HOSTS.search(host):
                user = segments[0].lstrip("@~")
                if host.endswith(_CODE_HOSTS) and len(segments) > 1:
                    return LINK, user  # a repository: kept unless its owner is a person found
                return URL, user
            return URL, segments[0]
        if _PROFILE_HOSTS.search(host):
            # A user's own site on a hosting service (jane.github.io), or the bare host.
            label = host.split(".")[0]
            if host.count(".") >= 2 and label not in ("www", "m", "mobile"):
                return URL, label
            return LINK, ""
        if _PERSONAL_TLD.search(host):
            return URL, host.rsplit(".", 1)[0].split(".")[-1]
        if self._personal_host(host, context.known):
            return URL, ""
        return LINK, ""

    def _personal_host(self, host: str, names: tuple[str, ...]) -> bool:
        labels = host.split(".")
        label = labels[-2] if len(labels) >= 2 else host
        letters = label.replace("-", "").replace("_", "")
        for name in names:
            squashed = re.sub(r"\W", "", name).lower()
            if len(squashed) >= 4 and squashed in letters:
                return True
        lexicon = self.lexicon
        if lexicon is None or not letters.isalpha() or not 5 <= len(letters) <= 30:
            return False
        if "-" in label:
            first, _, last = label.partition("-")
            return _title(first) in lexicon.first and _title(last) in lexicon.last
        for cut in range(3, len(letters) - 2):
            if _title(letters[:cut]) in lexicon.first and _title(letters[cut:]) in lexicon.last:
                return True
        return False

    # -- phones ----------------------------------------------------------------------------
