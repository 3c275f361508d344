"""A local Hugging Face dataset viewer API (`datasets-server`): `/rows`, `/splits`, `/is-valid`.

What `collector.sources.huggingface` relies on with `use_rows_api`:

- `GET /rows?dataset=&config=&split=&offset=&length=` (`length` at most 100) answers
  `{"features": [{"feature_idx", "name", "type"}], "rows": [{"row_idx", "row",
  "truncated_cells"}], "num_rows_total", "num_rows_per_page", "partial"}`;
- cells longer than `max_cell_chars` are cut and named in `truncated_cells`, as the real
  viewer does when a page would be too large;
- `partial: true` for the datasets in `partial` (the real viewer's mark of rows that come
  from a partial conversion of a large dataset: `num_rows_total` is not the whole of it);
- `GET /splits?dataset=` lists `{"splits": [{"dataset", "config", "split"}]}`;
- errors are `{"error": "..."}`: `422` for a bad parameter (`length` over 100), `404` for an
  unknown dataset, config or split, `401` for a gated dataset asked without a Bearer token.

Rows come from the same sample folder the Hub emulator is seeded with
(`data/huggingface/{owner}/{dataset}/`): every CSV/JSON/JSONL file, in path order, makes the
`default` config's `train` split. Tests set rows directly through `app[ROWS]`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.sandbox import aim_sources
from collector.sandbox.faults import FaultConfig, install

if TYPE_CHECKING:
    from collector.config import Config

DATA_DIR = Path(__file__).parent / "data" / "huggingface"
MAX_LENGTH = 100
NOT_FOUND = (
    "The dataset does not exist, or is not accessible without authentication (private or gated)."
    " Please check the spelling of the dataset name or retry with authentication."
)


@dataclass
class RowsStore:
    """Rows per (dataset, config, split), and the datasets that need a token."""

    splits: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=lambda: {"hf_sandbox_token"})
    max_cell_chars: int = 0  # 0: no truncation
    partial: set[str] = field(default_factory=set)  # datasets converted in part only

    def set_rows(
        self,
        dataset: str,
        rows: list[dict[str, Any]],
        config: str = "default",
        split: str = "train",
    ) -> None:
        self.splits[(dataset, config, split)] = rows


def rows_of_file(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(text, newline=""))]
    if suffix == ".json":
        data = json.loads(text)
        return [
            item for item in (data if isinstance(data, list) else [data]) if isinstance(item, dict)
        ]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_folder(root: Path, store: RowsStore) -> None:
    if not root.is_dir():
        return
    for owner in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in owner.iterdir() if p.is_dir()):
            rows: list[dict[str, Any]] = []
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix.lower() in (".csv", ".json", ".jsonl"):
                    rows += rows_of_file(path)
            store.set_rows(f"{owner.name}/{folder.name}", rows)


ROWS = web.AppKey("hf_rows", RowsStore)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _feature_type(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"dtype": "bool", "_type": "Value"}
    if isinstance(value, int):
        return {"dtype": "int64", "_type": "Value"}
    if isinstance(value, float):
        return {"dtype": "float64", "_type": "Value"}
    if isinstance(value, list):
        return {"feature": _feature_type(value[0] if value else ""), "_type": "Sequence"}
    if isinstance(value, dict):
        return {key: _feature_type(item) for key, item in value.items()}
    return {"dtype": "string", "_type": "Value"}


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """Options: `store` (a RowsStore), or `data_dir`, `gated`, `tokens`, `max_cell_chars`,
    `partial`."""
    store = options.pop("store", None)
    if store is None:
        data_dir = Path(options.pop("data_dir", DATA_DIR))
        if "gated" in options:
            options["gated"] = set(options["gated"])
        store = RowsStore(**options)
        load_folder(data_dir, store)
    app = web.Application()
    install(app, faults)
    app[ROWS] = store

    def refused(request: web.Request, dataset: str) -> web.Response | None:
        if not any(key[0] == dataset for key in store.splits):
            return _error(404, NOT_FOUND)
        if dataset in store.gated:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in store.tokens:
                return _error(401, NOT_FOUND)
        return None

    async def rows(request: web.Request) -> web.Response:
        query = request.query
        dataset, config, split = query.get("dataset"), query.get("config"), query.get("split")
        if not dataset or not config or not split:
            return _error(422, "Parameters 'dataset', 'config' and 'split' are required")
        try:
            offset = int(query.get("offset", "0"))
            length = int(query.get("length", str(MAX_LENGTH)))
        except ValueError:
            return _error(422, "Parameters 'offset' and 'length' must be integers")
        if offset < 0 or length < 0:
            return _error(422, "Parameters 'offset' and 'length' must be positive")
        if length > MAX_LENGTH:
            return _error(422, f"Parameter 'length' must not be greater than {MAX_LENGTH}")
        refusal = refused(request, dataset)
        if refusal is not None:
            return refusal
        data = store.splits.get((dataset, config, split))
        if data is None:
            return _error(404, "Not found: the config or split does not exist")
        page = []
        for index, row in enumerate(data[offset : offset + length], start=offset):
            cut = []
            shown = dict(row)
            if store.max_cell_chars:
                for key, value in row.items():
                    text = value if isinstance(value, str) else json.dumps(value)
                    if len(text) > store.max_cell_chars:  # cut, as a string, like the viewer
                        shown[key] = text[: store.max_cell_chars]
                        cut.append(key)
            page.append({"row_idx": index, "row": shown, "truncated_cells": cut})
        first = data[0] if data else {}
        features = [
            {"feature_idx": i, "name": name, "type": _feature_type(value)}
            for i, (name, value) in enumerate(first.items())
        ]
        return web.json_response(
            {
                "features": features,
                "rows": page,
                "num_rows_total": len(data),
                "num_rows_per_page": MAX_LENGTH,
                "partial": dataset in store.partial,
            }
        )

    async def splits(request: web.Request) -> web.Response:
        dataset = request.query.get("dataset", "")
        refusal = (
            refused(request, dataset) if dataset else _error(422, "Parameter 'dataset' is required")
        )
        if refusal is not None:
            return refusal
        found = [
            {"dataset": d, "config": c, "split": s}
            for d, c, s in sorted(store.splits)
            if d == dataset
        ]
        return web.json_response({"splits": found, "pending": [], "failed": []})

    async def is_valid(request: web.Request) -> web.Response:
        dataset = request.query.get("dataset", "")
        known = any(key[0] == dataset for key in store.splits)
        return web.json_response(
            {
                "viewer": known,
                "preview": known,
                "search": False,
                "filter": False,
                "statistics": False,
            }
        )

    app.router.add_get("/rows", rows)
    app.router.add_get("/splits", splits)
    app.router.add_get("/is-valid", is_valid)
    return app


def point(config: Config, url: str) -> Config:
    """Every Hugging Face source's rows API aimed at this emulator."""
    from collector.sources.config import HuggingFaceSourceConfig

    return aim_sources(config, HuggingFaceSourceConfig, rows_url=url)
