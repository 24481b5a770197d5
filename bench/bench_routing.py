"""Benchmark the routing engine against a naive linear scan (a script, not a test).

    python bench/bench_routing.py [--pairs 100000] [--naive-pairs 20000] [--seed 7]

Builds a synthetic partner directory: one YAML file per Territoire d'industrie of
``/work/shared/data/territoires-industrie-2023.csv`` when that file is present (else groups
of the geography's EPCI), 15 partners each with zones at every level (communes, EPCI,
département, région, whole territory) and a few filters. The files are loaded with
``load_territories`` (zones checked against the geography), then ``--pairs`` random
(theme, commune, firm facts) questions are routed by ``knowledge.routing.Router`` and
``--naive-pairs`` of them by a naive router that scans every partner of every territory
with the same rules. Both run in this process, pinned to one core where possible; the
naive decisions are checked equal to the router's. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from knowledge.geography import DEFAULT_PATH, Geography, default_geography  # noqa: E402
from knowledge.routing import (  # noqa: E402
    LEVELS,
    FirmFacts,
    Level,
    RoutedPartner,
    Router,
    RoutingDecision,
)
from knowledge.taxonomy import THEME_KEYS  # noqa: E402
from knowledge.territories import (  # noqa: E402
    SIZE_BANDS,
    Partner,
    Territory,
    TerritoryDirectory,
    load_territories,
)

REFERENCE_CSV = Path("/work/shared/data/territoires-industrie-2023.csv")
PARTNERS_PER_TERRITORY = 15
SYNTHETIC_TERRITORIES = 183
Question = tuple[str, str, FirmFacts | None]

# -- synthetic directory ---------------------------------------------------------------------


def territory_groups(geo: Geography, insees: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """(id, name, member EPCI SIRENs) per territory: the reference list, else made-up groups."""
    if REFERENCE_CSV.exists():
        groups: dict[str, tuple[str, list[str]]] = {}
        with REFERENCE_CSV.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                groups.setdefault(row["id_ti"], (row["lib_ti"], []))[1].append(
                    row["siren_groupement"]
                )
        # EPCI merged since 2023 are unknown to the table, and refused by load_territories
        known = [(tid, name, [s for s in members if geo.epci_name(s) is not None])
                 for tid, (name, members) in groups.items()]
        return [(tid, name, members) for tid, name, members in known if members]
    # No reference file: groups of three neighbouring EPCI (sorted by their first commune).
    epcis: list[str] = []
    for insee in insees:
        commune = geo.by_insee(insee)
        if commune and commune.epci_siren and commune.epci_siren not in epcis:
            epcis.append(commune.epci_siren)
    return [
        (f"ti-s{i:03d}", f"Territoire synthétique {i}", epcis[3 * i : 3 * i + 3])
        for i in range(min(SYNTHETIC_TERRITORIES, len(epcis) // 3))
    ]


def synthetic_partners(tid: str, geo: Geography, members: list[str]) -> list[dict[str, Any]]:
    """Fifteen partners of a territory, zones at every level, a few filters."""
    known = [siren for siren in members if geo.communes_of_epci(siren)]
    communes = [c for siren in known for c in geo.communes_of_epci(siren)]

    def most_common(values: list[str]) -> str | None:
        return max(sorted(set(values)), key=values.count) if values else None

    dep = most_common([c.departement for c in communes])
    region = most_common([c.region for c in communes])

    def zone(level: str, index: int = 0) -> dict[str, list[str]] | None:
        # A territory none of whose EPCI is in the geography gets whole-territory partners.
        if level == "commune" and communes:
            first = geo.communes_of_epci(known[index % len(known)])
            return {"communes": [c.insee for c in first[:3]]}
        if level == "epci" and known:
            return {"epci": [known[index % len(known)]]}
        if level == "departement" and dep:
            return {"departements": [dep]}
        if level == "region" and region:
            return {"regions": [region]}
        return None

    big = [band for band in SIZE_BANDS if band >= "21"]
    skills = ["recrutement", "competences"]
    chamber = ["export", "financement", "innovation", "difficulte"]
    local = ["foncier", "mutualisation", "mobilite", "autre"]
    rows: list[tuple[str, list[str], dict[str, list[str]] | None, dict[str, Any] | None]] = [
        ("france_travail", skills, zone("epci", 0), None),
        ("france_travail", skills, zone("epci", 1), None),
        ("france_travail", skills, zone("departement"), None),
        ("france_travail", ["recrutement"], zone("commune", 0), None),
        ("opco", skills, None, None),
        ("cci", chamber, zone("departement"), {"activity": "industrial"}),
        ("cma", ["competences", "financement", "innovation", "difficulte"],
         zone("departement"), {"activity": "artisan"}),
        ("region", ["innovation", "financement", "transition"], zone("region"), None),
        ("bpifrance", ["financement", "innovation", "export"], None, None),
        ("ademe", ["transition"], zone("region"), None),
        ("epf", ["foncier"], zone("region"), None),
        ("business_france", ["export"], zone("region"), None),
        ("epci_dev_eco", local, zone("epci", 0), None),
        ("epci_dev_eco", local, zone("epci", -1), None),
        ("dreets", ["difficulte"], zone("departement"), {"size_bands": big}),
    ]
    partners = []
    for n, (kind, themes, where, filters) in enumerate(rows):
        partner: dict[str, Any] = {
            "id": f"{tid}-p{n:02d}",
            "name": f"{kind} {tid} n°{n}",
            "kind": kind,
            "email": f"{tid}-p{n:02d}@example.org",
            "themes": themes,
        }
        if where:
            partner["zone"] = where
        if filters:
            partner["filters"] = filters
        partners.append(partner)
    return partners


def write_directory(directory: Path, geo: Geography, insees: Sequence[str]) -> int:
    """Write one YAML file per territory; return how many."""
    groups = territory_groups(geo, insees)
    for tid, name, members in groups:
        data = {
            "id": tid,
            "name": name,
            "epci": [{"siren": siren, "name": f"EPCI {siren}"} for siren in members],
            "animators": [{"name": f"Animateur {tid}", "email": f"{tid}@example.org"}],
            "partners": synthetic_partners(tid, geo, members),
        }
        (directory / f"{tid}.yaml").write_text(
            yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    return len(groups)


# -- the naive baseline ----------------------------------------------------------------------

_PLM_PARENT = {
    **{str(code): "75056" for code in range(75101, 75121)},
    **{str(code): "69123" for code in range(69381, 69390)},
    **{str(code): "13055" for code in range(13201, 13217)},
}


class NaiveRouter:
    """The same rules as Router, by scanning every partner of every territory per question."""

    def __init__(self, directory: TerritoryDirectory, geography: Geography) -> None:
        """Keep the flat list of (territory, partner); no index."""
        self.geography = geography
        self.territories = directory.territories
        self.pairs = [(t, p) for t in directory.territories for p in t.partners]

    @staticmethod
    def _match(partner: Partner, insee: str, epci: str, dep: str, region: str
               ) -> tuple[Level, str] | None:
        zone = partner.zone
        if zone is None:
            return "territoire", ""  # the caller puts the territory's id
        parent = _PLM_PARENT.get(insee)
        for code in zone.communes:
            if code == insee or code == parent:
                return "commune", code
        if epci in zone.epci:
            return "epci", epci
        if dep in zone.departements:
            return "departement", dep
        if region in zone.regions:
            return "region", region
        return None

    @staticmethod
    def _accepts(partner: Partner, firm: FirmFacts | None) -> bool:
        if firm is None:
            return True
        activity = partner.filters.activity
        if activity != "any" and firm.artisan is not None:
            if firm.artisan != (activity == "artisan"):
                return False
        bands = partner.filters.size_bands
        return not (bands and firm.size_band in SIZE_BANDS and firm.size_band not in bands)

    def route(self, *, theme: str, commune_insee: str, firm: FirmFacts | None = None
              ) -> RoutingDecision:
        """Scan all partners; keep the most specific level per kind; sort."""
        commune = self.geography.by_insee(commune_insee)
        assert commune is not None
        epci = commune.epci_siren or ""
        territory: Territory | None = None
        for candidate in self.territories:
            if candidate.covers_epci(epci):
                territory = candidate
                break
        found: list[tuple[int, str, str, Partner, Level, str]] = []
        for owner, partner in self.pairs:
            if owner is not territory or theme not in partner.themes:
                continue
            match = self._match(partner, commune.insee, epci, commune.departement, commune.region)
            if match is None or not self._accepts(partner, firm):
                continue
            level, code = match
            code = code or owner.id
            found.append((LEVELS.index(level), partner.kind, partner.id, partner, level, code))
        best: dict[str, int] = {}
        for rank, kind, *_ in found:
            best[kind] = min(rank, best.get(kind, rank))
        kept = sorted(f for f in found if f[0] == best[f[1]])
        routed = tuple(RoutedPartner(partner, level, code)
                       for _, _, _, partner, level, code in kept)
        return RoutingDecision(territory, routed, not routed, commune, theme)


# -- measurement -----------------------------------------------------------------------------


def questions(insees_inside: Sequence[str], insees_all: Sequence[str], count: int, seed: int
              ) -> list[Question]:
    """Random questions: 90 % in a territory's communes, 10 % anywhere; mixed firm facts."""
    rng = random.Random(seed)
    bands = [*SIZE_BANDS, "NN"]
    out: list[Question] = []
    for _ in range(count):
        pool = insees_inside if rng.random() < 0.9 else insees_all
        draw = rng.random()
        firm: FirmFacts | None
        if draw < 0.4:
            firm = None
        elif draw < 0.6:
            firm = FirmFacts(artisan=rng.random() < 0.5)
        elif draw < 0.8:
            firm = FirmFacts(size_band=rng.choice(bands))
        else:
            firm = FirmFacts(size_band=rng.choice(bands), artisan=rng.random() < 0.5)
        out.append((rng.choice(THEME_KEYS), rng.choice(pool), firm))
    return out


Route = Callable[..., RoutingDecision]


def measure(route: Route, qs: Sequence[Question]) -> dict[str, float]:
    """Throughput (untimed loop) and per-decision latency percentiles (timed loop)."""
    for theme, insee, firm in qs[:1000]:  # warm-up
        route(theme=theme, commune_insee=insee, firm=firm)
    start = time.perf_counter()
    for theme, insee, firm in qs:
        route(theme=theme, commune_insee=insee, firm=firm)
    elapsed = time.perf_counter() - start
    clock = time.perf_counter_ns
    samples: list[int] = []
    for theme, insee, firm in qs:
        t0 = clock()
        route(theme=theme, commune_insee=insee, firm=firm)
        samples.append(clock() - t0)
    cuts = statistics.quantiles(samples, n=100)
    return {
        "n": len(qs),
        "per_s": len(qs) / elapsed,
        "p50_us": cuts[49] / 1000,
        "p99_us": cuts[98] / 1000,
    }


def same(indexed: RoutingDecision, naive: RoutingDecision) -> bool:
    """Same territory, fallback, partners, levels and matched zones."""
    return (
        indexed.territory is naive.territory
        and indexed.fallback == naive.fallback
        and [(r.partner.id, r.level, r.zone) for r in indexed.partners]
        == [(r.partner.id, r.level, r.zone) for r in naive.partners]
    )


def all_insees() -> list[str]:
    """Every commune INSEE code of the shipped table (not the PLM arrondissements' parents)."""
    with gzip.open(DEFAULT_PATH, "rt", encoding="utf-8", newline="") as handle:
        return [row["insee"] for row in csv.DictReader(handle)]


def main(pairs: int, naive_pairs: int, seed: int) -> None:
    """Build the directory, run both routers, print the table."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    geo = default_geography()
    insees = all_insees()
    with tempfile.TemporaryDirectory() as tmp:
        count = write_directory(Path(tmp), geo, insees)
        t0 = time.perf_counter()
        directory = load_territories(Path(tmp), geo)
        load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    router = Router(directory, geo)
    build_s = time.perf_counter() - t0
    naive = NaiveRouter(directory, geo)

    members: dict[str, list[str]] = defaultdict(list)
    for territory in directory.territories:
        for member in territory.epci:
            members[territory.id].extend(c.insee for c in geo.communes_of_epci(member.siren))
    inside = [insee for group in members.values() for insee in group]
    qs = questions(inside, insees, pairs, seed)

    mismatches = sum(
        not same(router.route(theme=t, commune_insee=c, firm=f),
                 naive.route(theme=t, commune_insee=c, firm=f))
        for t, c, f in qs[:naive_pairs]
    )
    fast = measure(router.route, qs)
    slow = measure(naive.route, qs[:naive_pairs])
    decisions = [router.route(theme=t, commune_insee=c, firm=f) for t, c, f in qs]
    fallback = sum(d.fallback for d in decisions) / len(decisions)
    mean_partners = statistics.fmean(len(d.partners) for d in decisions)

    partners = sum(len(t.partners) for t in directory.territories)
    print(f"Directory: {count} territories, {partners} partners "
          f"({len(inside)} communes inside a territory); "
          f"load + validation {load_s * 1000:.0f} ms, Router index {build_s * 1000:.0f} ms.")
    print(f"Questions: {pairs} random (theme, commune, firm facts), 90 % inside a territory; "
          f"{fallback:.1%} fallbacks, {mean_partners:.2f} partners per decision.")
    print(f"Naive and indexed decisions compared on {naive_pairs} questions: "
          f"{naive_pairs - mismatches} identical, {mismatches} different.")
    print()
    print("| router | decisions | decisions/s | p50 µs | p99 µs |")
    print("|---|---:|---:|---:|---:|")
    for name, row in (("Router (indexes)", fast), ("naive scan (same rules)", slow)):
        print(f"| {name} | {row['n']:,.0f} | {row['per_s']:,.0f} | "
              f"{row['p50_us']:.1f} | {row['p99_us']:.1f} |")
    print()
    print(f"Speed-up: ×{fast['per_s'] / slow['per_s']:.0f} decisions/s, "
          f"×{slow['p50_us'] / fast['p50_us']:.0f} at p50.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000, help="questions for the Router")
    parser.add_argument("--naive-pairs", type=int, default=20_000,
                        help="questions for the naive scan (the first ones of the same list)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.pairs, min(args.naive_pairs, args.pairs), args.seed)
