"""Fakes for the TUI tests: a search service, a build and a training function that need no model."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mmtui.config import Settings
from mmtui.errors import ModelError, QueryError, StoreError
from mmtui.store.filters import Filter
from mmtui.progress import Cancelled, ProgressEvent, check_cancel
from mmtui.query.service import Hit, SearchResult

# id, title, category, colour, gender, brand, price, rgb (the colour of its fake image; None = no image)
PRODUCTS = [
    ("1001", "Nike Men Navy Blue Running Shoes", "Footwear", "Navy Blue", "Men", "Nike", 79.0, (20, 30, 110)),
    ("1002", "Adidas Women Black Running Shoes", "Footwear", "Black", "Women", "Adidas", 89.5, (15, 15, 15)),
    ("1003", "Puma Men Red Sports Shoes", "Footwear", "Red", "Men", "Puma", 59.0, (200, 20, 30)),
    ("1004", "Levis Men Blue Slim Jeans", "Apparel", "Blue", "Men", "Levis", 49.0, (40, 70, 160)),
    ("1005", "Vero Moda Women Red Dress", "Apparel", "Red", "Women", "Vero Moda", 39.9, (210, 40, 50)),
    ("1006", "Fossil Women Black Watch", "Accessories", "Black", "Women", "Fossil", 120.0, (25, 25, 25)),
    ("1007", "Titan Men Silver Watch", "Accessories", "Silver", "Men", "Titan", 95.0, (190, 190, 195)),
    ("1008", "United Colors Men Navy Blue T-shirt", "Apparel", "Navy Blue", "Men", "UCB", 19.0, (25, 35, 100)),
    ("1009", "Baggit Women Red Handbag", "Accessories", "Red", "Women", "Baggit", 45.0, (180, 30, 40)),
    ("1010", "Wildcraft Unisex Green Backpack", "Accessories", "Green", "Unisex", "Wildcraft", 35.0, (30, 140, 60)),
    ("1011", "Nike Women White Running Shoes", "Footwear", "White", "Women", "Nike", None, (245, 245, 245)),
    ("1012", "Text Only Men Grey Socks", "Apparel", "Grey", "Men", "Generic", 5.0, None),
]


def make_images(folder: Path) -> dict[str, Path]:
    """One small deterministic image per product: its colour with a lighter band (so it is not flat)."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for pid, *_, rgb in PRODUCTS:
        if rgb is None:
            continue
        im = Image.new("RGB", (32, 32), (255, 255, 255))
        draw = ImageDraw.Draw(im)
        draw.ellipse((4, 4, 27, 27), fill=rgb)
        draw.rectangle((10, 14, 21, 17), fill=tuple(min(255, c + 60) for c in rgb))
        path = folder / f"{pid}.png"
        im.save(path)
        paths[pid] = path
    return paths


def _matches(product: dict[str, Any], filters: list[Filter]) -> bool:
    for f in filters:
        value = product.get(f.field)
        if f.field == "price":
            if value is None:
                return False
            ok = {"=": value == f.value, "!=": value != f.value, "<": value < f.value, "<=": value <= f.value,
                  ">": value > f.value, ">=": value >= f.value}[f.op]
        elif f.op == "~":
            ok = str(f.value).lower() in str(value or "").lower()
        else:
            ok = (str(value or "").lower() == str(f.value).lower()) == (f.op == "=")
        if not ok:
            return False
    return True


def _understood(query: str, drop: tuple):
    """What the real service would understand of the few words these tests use ("women watch")."""
    from mmtui.query.understanding.parse import Understanding

    parts = {}
    if "watch" in query.lower():
        parts["kind"] = {"Watches": 1.0}
    if "women" in query.lower().split():
        parts["person"] = {"Women": 1.0, "Girls": 0.4}
    return Understanding(query, query, parts, fields={"kind": ("category", "~")}).without(drop)


@dataclass
class FakeSearchService:
    """Implements the SearchService interface the TUI uses, on twelve fixed products."""

    settings: Settings
    images: dict[str, Path]
    load_delay: float = 0.0
    ready: bool = False
    fail_search: Exception | None = None
    calls: list[tuple] = field(default_factory=list)
    drops: list[tuple] = field(default_factory=list)  # the `drop` of each search call
    active: str = "lite"
    release: threading.Event | None = None  # when set, load_model waits for it

    @property
    def model_ready(self) -> bool:
        return self.ready

    def load_model(self) -> None:
        self.calls.append(("load_model",))
        if self.release is not None:
            self.release.wait(30)
        time.sleep(self.load_delay)
        self.ready = True

    def _products(self) -> list[dict[str, Any]]:
        out = []
        for pid, title, cat, colour, gender, brand, price, _rgb in PRODUCTS:
            out.append({"id": pid, "title": title, "category": cat, "colour": colour, "gender": gender,
                        "brand": brand, "price": price, "image_path": str(self.images[pid]) if pid in self.images
                        else None})
        return out

    def _hit(self, p: dict[str, Any], score: float, rank: int, signals: dict[str, float]) -> Hit:
        return Hit(id=p["id"], title=p["title"], score=round(score, 4), rank=rank, category=p["category"],
                   colour=p["colour"], gender=p["gender"], brand=p["brand"], price=p["price"],
                   image_path=p["image_path"], image_status="ok" if p["image_path"] else "missing",
                   signals=signals, attributes={"season": "Summer"})

    def _ranked(self, scored: list[tuple[float, dict[str, Any], dict[str, float]]], k: int,
                filters: list[Filter] | None) -> list[Hit]:
        scored = [s for s in scored if _matches(s[1], filters or [])]
        scored.sort(key=lambda s: (-s[0], s[1]["id"]))
        return [self._hit(p, sc, i + 1, sig) for i, (sc, p, sig) in enumerate(scored[:k])]

    def search(self, query: str, *, k: int = 20, mode: str = "hybrid", filters: list[Filter] | None = None,
               drop: tuple = (), weights: dict | None = None, understand: bool = True,
               compound: bool = False) -> SearchResult:
        self.calls.append(("search", query, mode, tuple(filters or [])))
        self.drops.append(tuple(drop))
        if self.fail_search is not None:
            raise self.fail_search
        if mode != "lexical" and not self.ready:
            raise ModelError("model not loaded", "wait for it")
        words = [w for w in query.lower().split() if w]
        scored = []
        for p in self._products():
            hay = f"{p['title']} {p['colour']} {p['category']}".lower()
            lexical = sum(1.0 for w in words if w in hay)
            if lexical == 0:
                continue
            text = round(lexical / max(len(words), 1), 3)
            signals = {"lexical": lexical} if mode == "lexical" else {"text": text} if mode == "text" else \
                {"image": round(text * 0.6, 3)} if mode == "image" else \
                {"image": round(text * 0.6, 3), "text": text, "lexical": lexical}
            tie = int(p["id"]) * 1e-5 if mode == "lexical" else 0.0  # words alone break ties another way than hybrid
            scored.append((text + tie, p, signals))
        return SearchResult(mode=mode, hits=self._ranked(scored, k, filters), query=query, kind="text", took_ms=3.0,
                            understood=_understood(query, drop))

    def search_image(self, image: Path | str, *, k: int = 20, filters: list[Filter] | None = None,
                     mode: str = "image", region: str | None = None) -> SearchResult:
        from PIL import Image

        from mmtui.catalog.regions import parse_box

        self.calls.append(("search_image", str(image), tuple(filters or [])) + ((region,) if region else ()))
        try:
            with Image.open(image) as im:
                picture = im.convert("RGB")
        except OSError:
            raise QueryError(f"cannot read the image {image}", "give a JPEG or PNG file") from None
        if region is not None:
            box = parse_box(region, picture.size)
            picture = picture.crop((box.x, box.y, box.x + box.w, box.y + box.h))
        rgb = picture.getpixel((min(16, picture.width - 1), min(8, picture.height - 1)))
        scored = []
        for p, row in zip(self._products(), PRODUCTS):
            if row[-1] is None:
                continue
            dist = sum((a - b) ** 2 for a, b in zip(rgb, row[-1])) ** 0.5
            sim = round(1 - dist / 442, 4)
            scored.append((sim, p, {"image": sim}))
        return SearchResult(mode="image", hits=self._ranked(scored, k, filters), query=str(image), kind="image",
                            took_ms=4.0)

    def search_regions(self, image: Path | str, *, k: int = 20, filters: list[Filter] | None = None):
        """Every 32x32 tile of the picture is a region (a scene made of product pictures side by side)."""
        from PIL import Image

        from mmtui.catalog.regions import Box
        from mmtui.query.regions import Region, RegionSearchResult, round_robin

        self.calls.append(("search_regions", str(image)))
        with Image.open(image) as im:
            width, height = im.size
        regions = []
        for x in range(0, width - 31, 32):
            box = Box(x, 0, 32, min(32, height))
            hits = self.search_image(image, k=k, filters=filters, region=str(box)).hits
            regions.append(Region(box, hits[0].score if hits else 0.0, hits))
        self.calls.append(("search_regions done", len(regions)))
        return RegionSearchResult(mode="image", hits=round_robin([r.hits for r in regions], k), query=str(image),
                                  kind="image", took_ms=5.0, regions=regions, size=(width, height),
                                  candidates=len(regions))

    def more_like_this(self, product_id: str, *, k: int = 20, filters: list[Filter] | None = None) -> SearchResult:
        self.calls.append(("more_like_this", product_id))
        if product_id not in self.images:
            raise QueryError(f"product {product_id} has no image", "pick a product with an image")
        result = self.search_image(self.images[product_id], k=k, filters=filters)
        result.query = product_id
        return result

    def product(self, product_id: str) -> dict[str, Any]:
        for p in self._products():
            if p["id"] == product_id:
                out = {k: v for k, v in p.items()}
                out["attributes"] = {"season": "Summer", "usage": "Casual", "year": 2012}
                return out
        raise QueryError(f"no product {product_id}", "")

    def facets(self) -> dict[str, Any]:
        def counts(index: int) -> list[tuple[str, int]]:
            seen: dict[str, int] = {}
            for row in PRODUCTS:
                seen[row[index]] = seen.get(row[index], 0) + 1
            return sorted(seen.items(), key=lambda vc: -vc[1])
        prices = [row[6] for row in PRODUCTS if row[6] is not None]
        return {"category": counts(2), "colour": counts(3), "gender": counts(4), "price": (min(prices), max(prices))}

    def result_facets(self, hits: list[Hit], top: int | None = None):
        """Counted as the real service counts, with the hits' own fields for kind and person."""
        from mmtui.query.arrange import count_facets

        return count_facets(hits, top=top or 100)

    def variant_keys(self, hits: list[Hit]) -> dict[str, str]:
        from mmtui.query.arrange import colour_words, variant_key

        colours = colour_words(row[3] for row in PRODUCTS)
        return {h.id: variant_key(h.title, colours, h.category) for h in hits}

    def stats(self) -> dict[str, Any]:
        return {"products": len(PRODUCTS), "with_image": len(self.images), "rejects": {"missing_image": 1},
                "model": "lite", "active": self.active, "example_id": "1003"}

    def models(self) -> list[dict[str, Any]]:
        return [{"name": "lite", "kind": "base", "active": self.active == "lite", "metrics": {"recall@10": 0.41}},
                {"name": "adapter-1", "kind": "adapter", "active": self.active == "adapter-1",
                 "metrics": {"val_r10": 0.52}}]

    def use_model(self, name: str) -> None:
        """What switching models does to the data dir (the app's use_model_fn), recorded on the service."""
        self.calls.append(("use_model", name))
        self.active = name

    def reload(self) -> None:
        self.calls.append(("reload",))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore:Image.Image.getdata:DeprecationWarning")


@pytest.fixture
def anyio_backend() -> str:
    """The async Pilot tests (marked anyio) run on asyncio through anyio's pytest plugin."""
    return "asyncio"


@pytest.fixture(scope="session")
def product_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_images(tmp_path_factory.mktemp("images"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def fake_build(events: list | None = None, delay: float = 0.0, block: bool = False):
    """A build_index stand-in: emits progress per stage, honours cancel, returns a report.

    block=True: after the first event it waits until cancelled (for cancel tests that must not race)."""

    @dataclass
    class Report:
        products: int = 11
        encoded_images: int = 10
        encoded_texts: int = 11
        rejects_by_reason: dict = field(default_factory=lambda: {"missing_image": 1, "empty_title": 2})
        seconds: float = 1.5

        def to_json(self) -> dict:
            return {"products": self.products}

    def build(settings: Settings, catalog: Any, *, columns: dict | None = None, progress=None, cancel=None):
        if events is not None:
            events.append(("build", str(catalog)))
        for stage in ("read", "encode-images", "index"):
            for i in range(1, 5):
                check_cancel(cancel)
                if progress:
                    progress(ProgressEvent(stage, i, 4, f"{stage} {i}/4"))
                time.sleep(delay)
                while block:
                    check_cancel(cancel)
                    time.sleep(0.01)
        return Report()

    return build


def fake_train(events: list | None = None, epochs_delay: float = 0.0, wait: threading.Event | None = None,
               promoted: bool = True):
    """A train_adapter stand-in with a falling loss; `wait` makes it loop until cancelled."""

    def train(settings: Settings, *, epochs: int = 10, force: bool = False, progress=None, cancel=None) -> dict:
        if events is not None:
            events.append(("train", epochs))
        if wait is not None:
            try:
                while True:
                    check_cancel(cancel)
                    time.sleep(0.01)
            except Cancelled:
                if events is not None:
                    events.append(("cancelled",))
                raise
        for epoch in range(1, epochs + 1):
            check_cancel(cancel)
            if progress:
                progress(ProgressEvent("train", epoch, epochs, f"epoch {epoch}",
                                       metrics={"epoch": epoch, "train_loss": 2.0 / epoch, "val_loss": 2.2 / epoch,
                                                "val_r10": 0.3 + 0.02 * epoch}))
            time.sleep(epochs_delay)
        return {"promoted": promoted, "name": "adapter-2", "metrics": {"val_r10": 0.3 + 0.02 * epochs}}

    return train


@pytest.fixture
def make_test_app(settings: Settings, product_images: dict[str, Path]):
    """Build the app over a FakeSearchService; returns (app, service)."""
    from mmtui.tui.app import make_app

    def factory(*, ready: bool = True, images: str = "halfcell", fail_open: Exception | None = None,
                build_fn=None, train_fn=None, sample_catalog: Path | None = None, **service_kw: Any):
        service = FakeSearchService(settings, product_images, ready=ready, **service_kw)

        failures = [fail_open] if fail_open is not None else []

        def open_service(s: Settings) -> FakeSearchService:
            if failures:  # fails once, like an empty data dir before the first build
                raise failures.pop()
            return service

        app = make_app(settings, open_service, build_fn=build_fn or fake_build(), train_fn=train_fn or fake_train(),
                       use_model_fn=lambda s, name: service.use_model(name), images=images,
                       sample_catalog=sample_catalog)
        return app, service

    return factory


__all__ = ["FakeSearchService", "PRODUCTS", "StoreError", "fake_build", "fake_train", "make_images"]


async def settle(pilot, app, wait: float = 0.0) -> None:
    """Wait (past a debounce), then until no worker runs."""
    await pilot.pause(wait)
    for _ in range(300):
        if not any(w.is_running for w in app.workers):
            break
        await pilot.pause(0.01)
    await pilot.pause()
