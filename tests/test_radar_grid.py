"""The radar's grid of places (radar_places.candidate_pairs) changes no result: the graph
scored on the grid's candidate pairs equals the graph scored on every pair.

Real communes table (Doubs, Territoire de Belfort), real lexicon, no mock.
"""

from __future__ import annotations

import random
from collections import Counter
from itertools import combinations

import pytest

from bot.services import radar
from bot.services.radar import DEFAULT_THRESHOLD, NeedItem
from bot.services.radar_objects import object_lexicon
from bot.services.radar_places import (
    BASIN,
    CORRIDOR,
    MARKET,
    SITE,
    Places,
    candidate_pairs,
    compatible,
    home_of,
    place_rule,
    read_places,
)
from knowledge.geography import default_geography

# (theme, text): shuttles, land, heat, a canteen, housing, childcare and fairs, in towns of
# the territory ({town}), by a site's name only (Technoland, Aéroparc), or nowhere
TEMPLATES: list[tuple[str, str]] = [
    ("mobilite", "Une navette depuis {town} pour nos équipes du matin ?"),
    ("mobilite", "Un minibus entre {town} et {town2} aux heures de poste, avec d'autres ?"),
    ("mobilite", "Nos opérateurs de {town} n'ont pas de bus à 5h."),
    ("mobilite", "Du covoiturage pour nos salariés, qui s'organise ?"),
    ("mobilite", "Le premier bus n'arrive sur Technoland qu'après 6h."),
    ("foncier", "Nous cherchons un terrain de 2 hectares."),
    ("foncier", "Un atelier de 800 m² sur la zone de {town} ?"),
    ("foncier", "La friche de l'ancienne usine de {town} nous intéresse, 1 ha."),
    ("foncier", "Il nous faut 600 m² à l'Aéroparc, un bâtiment partagé ?"),
    ("transition", "Notre chaleur fatale pourrait chauffer un voisin."),
    ("mutualisation", "Un restaurant interentreprises sur la zone de {town} ?"),
    ("recrutement", "Le logement des apprentis est un problème pour nous."),
    ("recrutement", "Nos apprentis ne trouvent pas de logement à {town}."),
    ("recrutement", "Une crèche interentreprises près de {town} ?"),
    ("export", "Un stand commun au salon MEDICA à Düsseldorf ?"),
    ("export", "Une mission collective au Canada."),
    ("export", "Exposer ensemble à Ambiente, à Francfort."),
    ("export", "Un stand partagé à Düsseldorf en novembre ?"),
]
# a need whose firm's commune is unknown: its communes are read anywhere in France, far apart
FAR = ("mobilite", "Nos candidats viennent de Lille et de Marseille, un car ?")


def _communes() -> list[tuple[str, str]]:
    """(name, INSEE) of 60 communes of the Doubs and the Territoire de Belfort."""
    found = sorted((c for c in default_geography().communes()
                    if c.departement in {"25", "90"} and c.lat is not None),
                   key=lambda c: c.insee)
    return [(c.name, c.insee) for c in found[:: max(1, len(found) // 60)][:60]]


def _batch(n: int, seed: int) -> list[NeedItem]:
    """n needs about things that are somewhere, by firms in real communes."""
    rng = random.Random(seed)
    communes = _communes()
    items = []
    for i in range(1, n + 1):
        theme, text = FAR if rng.random() < 0.03 else rng.choice(TEMPLATES)
        text = text.format(town=rng.choice(communes)[0], town2=rng.choice(communes)[0])
        name, insee = rng.choice(communes)
        if rng.random() < 0.05:
            name, insee = None, None  # (a firm without a commune: no home)
        items.append(NeedItem(need_id=i, reference=f"G-{i}", theme=theme, text=text,
                              firm=f"Firme {rng.randint(1, n)}", commune=name,
                              commune_insee=insee))
    return items


def _clusters(graph: radar._Graph) -> list[list[int]]:
    """The groups of nodes the radar makes of a graph (as find_groups does)."""
    by_tag: dict[int, list[int]] = {}
    for k, tags in graph.tags.items():
        for tag in tags:
            by_tag.setdefault(tag, []).append(k)
    return radar._average_linkage(len(graph.nodes), graph.links, DEFAULT_THRESHOLD,
                                  [len(m) for m in graph.nodes], by_tag.values())


@pytest.mark.parametrize("seed", [11, 12])
def test_the_grid_scores_the_same_links_as_every_pair(seed: int) -> None:
    """Hundreds of needs about shuttles, land, housing and fairs: the same nodes, links and
    groups with the grid as with every pair scored, with and without separations."""
    items = _batch(400, seed)
    needs = radar._analyse(items, None)
    kinds = object_lexicon()
    rules = Counter(place_rule(o, kinds.kind_of(o)) for n in needs for o in n.objects)
    assert all(rules[rule] >= 10 for rule in (CORRIDOR, SITE, BASIN, MARKET)), rules
    # separations: some needs set apart two by two
    apart = {i: frozenset({i // 2}) for i in range(0, len(needs), 9)}
    for separated in ({}, apart):
        grid = radar._graph(needs, None, separated)
        every = radar._graph(needs, None, separated, exhaustive=True)
        assert grid.nodes == every.nodes
        assert grid.tags == every.tags
        assert grid.links == every.links
        assert _clusters(grid) == _clusters(every)
    assert len(grid.links) > 500
    assert sum(len(c) >= 2 for c in _clusters(grid)) >= 5


def _sample_places(seed: int) -> list[Places]:
    """Places of many kinds: communes of the territory, sites by name, fairs, no home, far."""
    texts = [text for _, text in (*TEMPLATES, FAR)]
    rng = random.Random(seed)
    communes = _communes()
    found = []
    for _ in range(300):
        text = rng.choice(texts).format(town=rng.choice(communes)[0],
                                        town2=rng.choice(communes)[0])
        name, insee = rng.choice(communes)
        home = None if rng.random() < 0.1 else home_of(name, insee)
        found.append(read_places(text, home))
    return found


@pytest.mark.parametrize("rule", [CORRIDOR, SITE, BASIN, MARKET])
def test_the_candidate_pairs_hold_every_compatible_pair(rule: str) -> None:
    """Every pair ``compatible`` accepts is a candidate, under each rule; on shuttles and land
    of one territory the grid leaves most pairs out."""
    places = _sample_places(5)
    assert any(p.box is None for p in places) and any(not p.named for p in places)
    assert any(p.names for p in places) and any(p.fairs for p in places)
    candidates = candidate_pairs(rule, places)
    accepted = {(i, j) for i, j in combinations(range(len(places)), 2)
                if compatible(rule, places[i], places[j])}
    assert accepted <= candidates
    assert all(i < j for i, j in candidates)
    if rule in (CORRIDOR, SITE):
        assert len(candidates) < 0.6 * len(places) * (len(places) - 1) / 2
    # a need whose places were not read is compared with every other
    with_none = [*places[:20], None]
    assert {(i, 20) for i in range(20)} <= candidate_pairs(rule, with_none)


def test_near_a_pole_the_grid_compares_every_point() -> None:
    """Where a degree of longitude is no distance, a box covers too many cells: every point
    is compared (two firms' communes at 89.95° N, 170° apart, are one place to _km)."""
    north = [Places(home=(89.95, 0.0)), Places(home=(89.95, 170.0))]
    for rule in (SITE, CORRIDOR):
        assert compatible(rule, *north)
        assert candidate_pairs(rule, north) == {(0, 1)}
