"""Anonymization: personal information in training text becomes `[EMAIL]`, `[PHONE]`, `[URL]`,
`[ADDRESS]` and `[NAME]` (or `[NAME_1]`, `[NAME_2]`... per record with `consistent_names`).

One detector per kind, each `find(text, context) -> spans`: `emails.py`, `phones.py`,
`links.py`, `addresses.py`, `names.py`; `persons.py` removes every person found from every
message of the record; `spans.py` merges the spans and renders the tokens; `anonymizer.py`
runs them in that order.

Import from the modules themselves (`processors.anonymize.anonymizer.Anonymizer`): this package
imports none of them, so that what needs only the tokens (`spans.TOKEN_PATTERN`: the service's
dedupe keys) loads none of the detectors and their patterns.
"""
