"""Licences and attribution: one home for how a licence is named and what it asks of us.

Sources put what the remote says about a record in `RawRecord.meta` (`license`, `url`, and
`authors`: the public profile name and link of whoever wrote it); the formatted sink writes it
into each example's provenance line, keeping the authors only where the licence requires
attribution (`requires_attribution`); the dataset card lists the licences and the attribution.
"""

from __future__ import annotations

import re
from typing import Any

# The rule lives with the processors, which need it too (processors/credit.py).
from processors.credit import requires_attribution as requires_attribution

UNKNOWN = "unknown"
# An inbox with no `license`: the operator's own material, published under the operator's terms.
OWN = "LicenseRef-operator-own"

# What the APIs say, as SPDX ids: Stack Exchange's `content_license` ("CC BY-SA 4.0"), the Hub's
# card (`cc-by-sa-4.0`, `mit`), Kaggle's `licenseName` ("CC0: Public Domain", "CC BY-SA 4.0").
_KNOWN = {
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "cc0: public domain": "CC0-1.0",
    "public domain": "CC0-1.0",
    "mit": "MIT",
    "apache-2.0": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "odc-by": "ODC-By-1.0",
    "odc-by-1.0": "ODC-By-1.0",
    "odc attribution license (odc-by)": "ODC-By-1.0",
}
_CC = re.compile(r"^cc[\s-]+(by(?:[\s-]+(?:sa|nc|nd))*)[\s-]+(\d\.\d)$", re.IGNORECASE)


def spdx(text: object) -> str:
    """An SPDX id for a licence as an API or a config names it; "" when it names none."""
    if not isinstance(text, str) or not text.strip() or text.strip().lower() == UNKNOWN:
        return ""
    name = " ".join(text.split())
    known = _KNOWN.get(name.lower())
    if known:
        return known
    match = _CC.match(name)
    if match:
        parts = re.split(r"[\s-]+", match[1].upper())
        return "-".join(["CC", *parts, match[2]])
    return name


def hub_license(license: str) -> str:
    """The card's `license` value: the Hub's ids are SPDX ids in lower case, `other` for a
    licence of one's own (`LicenseRef-...`)."""
    if not license:
        return UNKNOWN
    return "other" if license.startswith("LicenseRef-") else license.lower()


def inbox_origin(license: str, attribution: str) -> dict[str, Any]:
    """Provenance of an inbox's records: the configured licence and credit, else the operator's."""
    return {
        "license": spdx(license) or OWN,
        "authors": [{"name": attribution, "url": ""}] if attribution else [],
    }


def authors_of(meta: dict[str, Any]) -> list[dict[str, str]]:
    """The authors a source named in a record's meta: `[{"name", "url"}]`."""
    found = meta.get("authors")
    if not isinstance(found, list):
        return []
    return [
        {"name": str(a.get("name", "")), "url": str(a.get("url", ""))}
        for a in found
        if isinstance(a, dict) and a.get("name")
    ]


def attribution_text(url: str, authors: list[dict[str, str]], license: str) -> str:
    """One line of credit: `by NAME (PROFILE), ... - URL - LICENCE`, what CC BY asks for."""
    by = ", ".join(f"{a['name']} ({a['url']})" if a.get("url") else a["name"] for a in authors)
    parts = [f"by {by}" if by else "", url, license]
    return " - ".join(p for p in parts if p)
