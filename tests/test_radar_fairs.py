"""One export mission is one trade fair (bot.services.radar_fairs, knowledge/data/fairs.yaml)
and what the radar makes of it. Real fairs file, real lexicon, no mock."""

from __future__ import annotations

import yaml

from bot.services.radar import NeedItem, find_groups
from bot.services.radar_fairs import FAIRS_FILE, fair_index

KEYS = {"name", "aliases", "city", "city_aliases", "country", "sector"}


def test_the_fairs_file_is_well_formed() -> None:
    """Every fair has its six keys, a name and a city; no name twice."""
    fairs = yaml.safe_load(FAIRS_FILE.read_text(encoding="utf-8"))["fairs"]
    assert len(fairs) >= 200
    names = [f["name"] for f in fairs]
    assert len(names) == len(set(names))
    for fair in fairs:
        assert set(fair) == KEYS, fair.get("name")
        assert str(fair["name"]).strip() and str(fair["city"]).strip(), fair


def test_a_fair_by_its_name_its_alias_or_its_city() -> None:
    """ProWein, « Pro Wein » in lower case, and Düsseldorf written alone (a city abroad)."""
    index = fair_index()
    assert index.read("On aimerait faire ProWein en mars") == (
        frozenset({"ProWein"}), frozenset({"dusseldorf"}))
    assert index.read("on va a prowein cette annee")[0] == {"ProWein"}
    assert index.read("le grand salon professionnel du vin de Düsseldorf") == (
        frozenset(), frozenset({"dusseldorf"}))


def test_what_is_no_fair() -> None:
    """« 5 K » is money; « le salon de Hanovre » is any fair of Hanover (its city only); a
    French city says nothing (firms and staff are there too)."""
    index = fair_index()
    assert index.read("un stand à 5 K pour nous seuls") == (frozenset(), frozenset())
    assert index.read("le salon de Hanovre en novembre") == (frozenset(),
                                                             frozenset({"hanovre"}))
    assert index.read("nos salariés viennent de Lyon") == (frozenset(), frozenset())
    # a fair named by an ordinary word (Tube, in Düsseldorf) is not every sentence's first word
    assert index.read("Tube inox : nos clients export attendent.") == (frozenset(), frozenset())
    assert index.read("On ira au salon Tube cette année.")[0] == {"Tube"}


def test_a_generic_form_marked_in_the_file_names_one_fair() -> None:
    """« Salon du Bourget » has the form of « salon de Hanovre » but names one fair (marked
    « = » in the file): Le Bourget is not Farnborough."""
    index = fair_index()
    fairs, cities = index.read("Nous serons au Salon du Bourget en juin.")
    assert fairs == {"Salon International de l'Aéronautique et de l'Espace"}
    assert cities == {"le bourget"}
    assert index.read("Farnborough 2026 : un pavillon commun ?") == (
        frozenset(), frozenset({"farnborough"}))


def _item(need_id: int, text: str) -> NeedItem:
    """An export need of its own firm."""
    return NeedItem(need_id=need_id, reference=f"REF-{need_id}", theme="export", text=text,
                    firm=f"Firme {need_id}", commune=None)


def test_the_radar_keeps_two_fairs_apart_and_a_fair_with_its_city() -> None:
    """Two firms for MEDICA (one names Düsseldorf only), two for Ambiente in Frankfurt: two
    groups, not one « salon » group."""
    items = [
        _item(1, "Nous aimerions exposer au MEDICA, c'est là que sont les acheteurs "
                 "d'instruments chirurgicaux. Un stand partagé avec d'autres fabricants ?"),
        _item(2, "Le grand salon du dispositif médical à Düsseldorf en novembre : un stand "
                 "collectif avec d'autres entreprises nous intéresse."),
        _item(3, "Nous aimerions présenter nos couteaux de table au salon Ambiente de "
                 "Francfort, sur un stand commun avec d'autres couteliers."),
        _item(4, "Ambiente en février : on cherche d'autres entreprises pour partager un stand."),
    ]
    groups = {frozenset(g.need_ids) for g in find_groups(items, kb=None)}
    assert groups == {frozenset({1, 2}), frozenset({3, 4})}
