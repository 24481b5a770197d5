"""Where a need's shuttle, land or housing is (bot.services.radar_places) and what the radar
makes of it: two corridors, two sites, one site named in other words.

Real communes table (knowledge/geo/communes.csv.gz), real lexicon, no mock.
"""

from __future__ import annotations

import pytest

from bot.messages import Text
from bot.services.mutualisation import describe
from bot.services.radar import NeedItem, find_groups
from bot.services.radar_places import (
    BASIN,
    CORRIDOR,
    LAND,
    SITE,
    Places,
    compatible,
    home_of,
    place_rule,
    read_places,
    speaks_of_premises,
)
from knowledge.geography import default_geography


def _insee(commune: str, departement: str | None = None) -> str:
    """The INSEE code of a commune (in a département, when several bear the name)."""
    found = [c for c in default_geography().named(commune)
             if departement is None or c.departement == departement]
    assert len(found) == 1 or departement is None, (commune, found)
    assert found, commune
    return found[0].insee


def _places(text: str, commune: str, departement: str | None = None) -> Places:
    """The places of a text written by a firm of ``commune`` (by its INSEE code)."""
    return read_places(text, home_of(commune, _insee(commune, departement)))


def _names_of(places: Places) -> set[str]:
    """The communes a reading found, by name (INSEE codes looked up)."""
    geo = default_geography()
    return {c.name for code in places.codes if (c := geo.by_insee(code)) is not None}


# -- reading the places --------------------------------------------------------------------


def test_communes_named_are_read_near_the_firm() -> None:
    """« Clermont » written in Thiers is Clermont-Ferrand; two communes in one sentence."""
    places = _places("Nos salariés viennent de Clermont et de Pont-du-Château, 45 km "
                     "d'autoroute matin et soir.", "Thiers")
    assert _names_of(places) == {"Clermont-Ferrand", "Pont-du-Château"}


def test_a_short_name_is_the_nearby_commune_it_begins() -> None:
    """« Montceau » near Le Creusot is Montceau-les-Mines, « Montereau » near La Brosse-
    Montceaux is Montereau-Fault-Yonne and not the Montereau of the Loiret, 60 km away."""
    assert _names_of(_places("Un car depuis Montceau le matin.", "Le Creusot")) == {
        "Montceau-les-Mines"}
    assert _names_of(_places("Partager le quai de Montereau avec d'autres chargeurs.",
                             "La Brosse-Montceaux")) == {"Montereau-Fault-Yonne"}


def test_a_rare_name_counts_in_lower_case_a_common_word_does_not() -> None:
    """An SMS writes « gandrange »; « on vire les copeaux » names no Vire."""
    assert _names_of(_places("la friche arcelor de gandrange c'est a 5 min", "Rombas")) == {
        "Gandrange"}
    assert not _places("on vire les copeaux tous les soirs", "Flers").named


def test_an_area_named_after_its_town() -> None:
    """« le Choletais » is around Cholet."""
    assert _names_of(_places("Transport des intérimaires depuis le Choletais jusqu'aux "
                             "Herbiers.", "Les Herbiers")) == {"Cholet", "Les Herbiers"}


def test_sites_that_are_no_commune_are_kept_by_name() -> None:
    """A zone's name (Technoland, Hauts Banquets) is a site; acronyms and titles are not."""
    places = _places("Madame, Monsieur, le bus de la SNCF et le TER n'arrivent pas sur "
                     "Technoland avant 6h.", "Étupes")
    assert "technoland" in places.names
    assert not {"madame", "monsieur", "sncf", "ter"} & places.names
    assert "hauts banquets" in _places("Un entrepôt commun sur la zone des Hauts Banquets.",
                                       "Cavaillon").names


def test_a_capital_at_a_sentence_start_is_no_place() -> None:
    """« Pour », « Plus » begin sentences; no commune is read from them."""
    assert not _places("Pour nous c'est urgent. Plus personne ne vient.", "Brest").named


def test_a_far_commune_is_neither_a_point_nor_a_site() -> None:
    """Staff from Marseille, seen from Gravelines: no point near, no site name either."""
    places = _places("Nos candidats de Marseille refusent faute de logement.", "Gravelines")
    assert not places.points and "marseille" not in places.names


def test_premises_words() -> None:
    """A surface, a plot or a building makes a need about premises; a production lot no."""
    assert speaks_of_premises("cherchons 600 m² à l'Aéroparc")
    assert speaks_of_premises("un local plus grand avec une aspiration")
    assert speaks_of_premises("un lot sur les Franchises, à Langres")
    assert speaks_of_premises("il reste des lots viabilisés")
    assert not speaks_of_premises("nos lots de pièces attendent le contrôle")
    assert not speaks_of_premises("un lot de 500 pièces")
    assert not speaks_of_premises("un partenaire local pour la maintenance")


# -- comparing them ------------------------------------------------------------------------


def test_the_objects_compared_by_place_exist() -> None:
    """The objects a place rule names by id are in the lexicon (a rename would drop the
    rule silently)."""
    from bot.services.radar_objects import object_lexicon
    from bot.services.radar_places import _RULE_OF_OBJECT

    assert set(_RULE_OF_OBJECT) <= set(object_lexicon().objects)


def test_objects_that_are_somewhere() -> None:
    """Shuttles by corridor, land and heat by site, housing and childcare by basin."""
    assert place_rule("transport", "route") == CORRIDOR
    assert place_rule("foncier", "land") == LAND
    assert place_rule("chaleur", "flow") == SITE
    assert place_rule("logement", "housing") == BASIN
    assert place_rule("soudure", "trade") is None


def test_two_corridors_of_one_territory_differ() -> None:
    """Pau → Lacq is not Tarbes → Bagnères-de-Bigorre."""
    pau = _places("70 % de nos postés habitent Pau, relèves à 5h et 21h.", "Artix", "64")
    tarbes = _places("Nos salariés qui habitent Tarbes font 25 km de route de montagne.",
                     "Bagnères-de-Bigorre", "65")
    assert not compatible(CORRIDOR, pau, tarbes)


def test_one_corridor_written_from_both_ends() -> None:
    """Vire → Flers and Flers ← Vire; staff of Noeux going to Haisnes ride the Bruay →
    Douvrin line; Valdahon lies on the Besançon – Morteau axis."""
    assert compatible(CORRIDOR, _places("Nos opérateurs viennent de Flers.", "Vire Normandie"),
                      _places("Un car depuis Vire pour les équipes.", "Flers"))
    assert compatible(CORRIDOR, _places("Des candidats à Bruay et Auchel.", "Douvrin"),
                      _places("Nos gars de Noeux n'ont pas de bus.", "Haisnes"))
    assert compatible(CORRIDOR,
                      _places("Un car le matin depuis Besançon et Valdahon.",
                              "Grand'Combe-Châteleu"),
                      _places("Du covoiturage sur l'axe Besançon - Morteau.", "Morteau"))


def test_the_same_town_of_origin_to_another_site_is_another_corridor() -> None:
    """Belfort → Rougemont-le-Château is not Belfort → Technoland."""
    rougemont = _places("Nos jeunes habitent Belfort et doivent monter chez nous à "
                        "Rougemont.", "Rougemont-le-Château")
    technoland = _places("Le premier bus n'arrive sur Technoland qu'après 6h depuis "
                         "Montbéliard ou Belfort.", "Brognard")
    assert not compatible(CORRIDOR, rougemont, technoland)


def test_one_origin_to_two_destinations_is_two_corridors() -> None:
    """Where the staff go is each firm's own site: Mantes → Les Mureaux is not Mantes →
    Bonnières, Luchon → Saint-Gaudens is not Saint-Gaudens → Lannemezan; two firms of one
    zone fed from one town are one corridor."""
    mureaux = _places("Nos opérateurs habitent Mantes-la-Jolie, aucun bus pour l'équipe de "
                      "5h.", "Les Mureaux")
    bonnieres = _places("Plusieurs salariés viennent chaque jour de Mantes-la-Jolie ; les "
                        "trains sont rares aux heures de poste.", "Bonnières-sur-Seine")
    assert not compatible(CORRIDOR, mureaux, bonnieres)
    assert not compatible(CORRIDOR, bonnieres, mureaux)
    luchon = _places("Une vingtaine de nos salariés habitent Bagnères-de-Luchon et descendent "
                     "chaque jour.", "Saint-Gaudens", "31")
    lannemezan = _places("Nos candidats de Saint-Gaudens et de Montréjeau n'ont pas de "
                         "voiture.", "Lannemezan")
    assert not compatible(CORRIDOR, luchon, lannemezan)
    flins = _places("Un minibus depuis Mantes-la-Jolie le matin ?", "Flins-sur-Seine")
    aubergenville = _places("Nos gars de Mantes n'ont pas de bus à 4h30.", "Aubergenville")
    assert compatible(CORRIDOR, flins, aubergenville)


def test_two_sides_of_one_town_are_two_destinations() -> None:
    """Caen → Blainville-sur-Orne is not Caen → Troarn (the two sites 14 km apart on two
    sides of the town); Caen → Blainville and Caen → Colombelles (one zone) are one."""
    blainville = _places("Nos intérimaires habitent Caen, aucun bus à 5h.", "Blainville-sur-Orne")
    troarn = _places("Nos salariés de Caen mettent une heure pour venir.", "Troarn")
    colombelles = _places("Un car depuis Caen pour l'équipe du matin ?", "Colombelles")
    assert not compatible(CORRIDOR, blainville, troarn)
    assert compatible(CORRIDOR, blainville, colombelles)


def test_a_need_that_names_no_place_is_compared_by_its_firm() -> None:
    """A firm near the corridor joins it; one 20 km away on another road does not."""
    corridor = _places("Une navette depuis Pau pour nos postés.", "Lacq", "64")
    assert compatible(CORRIDOR, corridor, _places("Pas de bus à 5h pour nos opérateurs.",
                                                   "Mourenx", "64"))
    assert not compatible(CORRIDOR, corridor, _places(
        "Nous devons établir un plan de mobilité employeur.", "Thèze", "64"))


def test_one_site_and_two_sites() -> None:
    """The same brownfield named two ways; two different zones; a firm without a site."""
    gandrange = _places("l'ancien site sidérurgique de Gandrange pourrait être requalifié",
                        "Rombas")
    assert compatible(SITE, gandrange, _places("la friche arcelor de gandrange", "Amnéville"))
    banquets = _places("La zone des Hauts Banquets n'a plus de lots.", "Cheval-Blanc")
    grand_sud = _places("La plateforme Grand Sud Logistique serait idéale.", "Montbartier")
    assert not compatible(SITE, banquets, _places("Un terrain sur Grand Sud Logistique.",
                                                   "Grisolles"))
    assert compatible(SITE, grand_sud, _places("Un terrain sur Grand Sud Logistique.",
                                               "Grisolles"))
    # a firm that names no site looks near its own commune
    assert compatible(SITE, _places("Il nous faut un terrain de 5 000 m².", "Oyonnax"),
                      _places("Y a-t-il des friches dispo sur la zone ?", "Nantua"))
    assert not compatible(SITE, _places("Il nous faut un terrain de 5 000 m².", "Oyonnax"),
                          _places("Il nous faut un terrain.", "Bourg-en-Bresse"))


def test_two_origins_to_one_site_are_two_corridors() -> None:
    """Andernos → Aéroparc is not Bordeaux's tram → Martignas, though both end at the
    Aéroparc; Chaussin → Choisey is not Dole → Tavaux; where the text says the staff go
    (« jusqu'à Mérignac ») is no origin; one road ridden both ways stays one corridor."""
    bassin = _places("Un tiers de nos opérateurs habitent Andernos, Arès ou Lanton. Une navette "
                     "depuis le nord du Bassin vers l'Aéroparc ?", "Saint-Médard-en-Jalles")
    tram = _places("Nos salariés viennent de Bordeaux en tram et descendent à Mérignac ; plus "
                   "rien ensuite jusqu'à l'Aéroparc.", "Martignas-sur-Jalle")
    audenge = _places("Des candidats qui habitent Audenge ou Andernos refusent : la route du "
                      "Bassin jusqu'à Mérignac est saturée.", "Mérignac", "33")
    assert not compatible(CORRIDOR, bassin, tram)
    assert not compatible(CORRIDOR, tram, bassin)
    assert compatible(CORRIDOR, bassin, audenge)
    assert not compatible(CORRIDOR, tram, audenge)
    dole = _places("Nos opérateurs postés habitent souvent Dole, aucun bus à 5h.", "Tavaux")
    chaussin = _places("Nos salariés viennent de Chaussin et de Saint-Aubin, aucune ligne.",
                       "Choisey")
    assert not compatible(CORRIDOR, dole, chaussin)
    assert compatible(CORRIDOR, dole, _places("Ils habitent presque tous sur Dole.", "Damparis"))
    # a destination named is not where the staff come from: Flers → Vire both ways
    assert compatible(CORRIDOR, _places("Nos opérateurs viennent de Flers.", "Vire Normandie"),
                      _places("Un car depuis Vire pour les équipes.", "Flers"))


def test_one_land_project_is_a_site_someone_names() -> None:
    """Two firms each looking for a plot are two searches; a zone, a brownfield or a lot
    being sold is one project, named or not; « n'importe où » is a search."""
    oyonnax = _places("Il nous faut un terrain de 5 000 m².", "Oyonnax")
    nantua = _places("Il nous faut 2 ha près de chez nous.", "Nantua")
    assert compatible(SITE, oyonnax, nantua)  # (the site rule alone: near enough)
    assert not compatible(LAND, oyonnax, nantua)
    zone = _places("La ZA de Legé est complète : une extension est-elle prévue ?", "Legé", "44")
    other = _places("On voudrait s'installer sur la zone d'activités de Legé.",
                    "Corcoué-sur-Logne", "44")
    assert zone.designated and other.designated
    assert compatible(LAND, zone, other)
    anywhere = _places("Un terrain de 1,5 ha n'importe où entre Nancy et Pont-à-Mousson, près "
                       "de la zone de l'A31.", "Liverdun")
    assert not anywhere.designated
    friche = _places("La friche Philips de Dreux pourrait être découpée en lots.", "Dreux")
    assert compatible(LAND, friche, _places("L'ex-usine Philips nous irait bien.", "Tréon"))
    # a site named on one side only: the firm that searches elsewhere is not its project
    assert not compatible(LAND, anywhere, _places("Un lot sur la friche de Pompey ?", "Pompey"))


# -- in the radar ----------------------------------------------------------------------------


def _item(need_id: int, commune: str, departement: str, text: str) -> NeedItem:
    """A need of its own firm in a commune (by INSEE code, as the bot has it)."""
    return NeedItem(need_id=need_id, reference=f"REF-{need_id}", theme="mobilite", text=text,
                    firm=f"Firme {need_id}", commune=commune,
                    commune_insee=_insee(commune, departement))


def test_a_site_known_by_name_is_near_the_firm_that_names_it() -> None:
    """« Le Saut du Tarn » named from Saint-Juéry is not land sought in Gaillac, 25 km away;
    land sought in Arthès, next door, may be it."""
    saut = _places("Les anciennes halles de l'usine du Saut du Tarn sont en partie vides.",
                   "Saint-Juéry", "81")
    assert saut.names and not saut.points
    gaillac = _places("On cherche un terrain de 5 000 m² sur Gaillac.", "Gaillac")
    arthes = _places("Un terrain sur Arthès, près de chez nous.", "Lescure-d'Albigeois")
    assert not compatible(SITE, saut, gaillac)
    assert not compatible(SITE, gaillac, saut)
    assert compatible(SITE, saut, arthes)


@pytest.mark.parametrize("kb", [None])
def test_the_radar_keeps_two_corridors_apart(kb: None) -> None:
    """Three needs on Pau → Lacq and two on Tarbes → Bagnères: two groups, not one."""
    items = [
        _item(1, "Artix", "64", "70 % de nos postés habitent Pau. Une navette partagée entre "
                          "entreprises pour les relèves de 5h et 21h ?"),
        _item(2, "Lacq", "64", "Nos jeunes opérateurs viennent de Pau en voiture, 35 km. Un bus "
                         "commun aux usines du bassin ?"),
        _item(3, "Mourenx", "64", "Nous finançons seuls un petit bus depuis Pau, à moitié vide : "
                            "ouvert aux salariés des autres usines ?"),
        _item(4, "Bagnères-de-Bigorre", "65", "Nos salariés qui habitent Tarbes font 25 km de "
                                        "route l'hiver. Une navette Tarbes – Bagnères aux "
                                        "heures de poste ?"),
        _item(5, "Bagnères-de-Bigorre", "65", "Un minibus depuis Tarbes pour nos équipes du matin, "
                                        "avec les autres entreprises de la vallée ?"),
    ]
    groups = {frozenset(g.need_ids) for g in find_groups(items, kb=kb)}
    assert groups == {frozenset({1, 2, 3}), frozenset({4, 5})}


def test_the_radar_keeps_two_origins_to_one_site_apart() -> None:
    """Staff from the Bassin d'Arcachon and staff off Bordeaux's tram both go to the Aéroparc:
    the animator sees two shuttles, not one."""
    items = [
        _item(1, "Saint-Médard-en-Jalles", "33", "Un tiers de nos opérateurs habitent Andernos "
              "ou Arès. Une navette depuis le nord du Bassin vers l'Aéroparc, avec les voisins ?"),
        _item(2, "Le Haillan", "33", "Covoiturage Andernos – Le Haillan : 9 salariés font la "
              "route chaque jour ; si les autres boîtes font pareil, une navette commune ?"),
        _item(3, "Martignas-sur-Jalle", "33", "Nos salariés viennent de Bordeaux en tram et "
              "descendent à Mérignac, puis plus rien jusqu'à nous. Une navette commune ?"),
        _item(4, "Martignas-sur-Jalle", "33", "Le tram de Bordeaux s'arrête à Mérignac : une "
              "navette partagée depuis le terminus pour nos équipes du matin ?"),
    ]
    groups = {frozenset(g.need_ids) for g in find_groups(items, kb=None)}
    assert groups == {frozenset({1, 2}), frozenset({3, 4})}


def test_the_radar_leaves_two_land_searches_apart() -> None:
    """Two firms of one town each looking for a plot are two searches; two firms after the
    same zone's next lots are one group, shown with its site."""
    items = [
        _item(1, "Legé", "44", "Il nous faut un terrain de 5 000 m² pour agrandir, peu importe "
                               "où autour de Legé."),
        _item(2, "Legé", "44", "Nous cherchons un terrain d'un hectare pour construire un "
                               "atelier neuf près de chez nous."),
        _item(3, "Corcoué-sur-Logne", "44", "La ZA de Legé est complète : une extension est-elle "
                                            "prévue ? Il nous faut 3 000 m²."),
        _item(4, "Legé", "44", "On voudrait un lot sur la zone d'activités de Legé, mais il n'y "
                               "a plus un terrain libre."),
    ]
    found = find_groups(items, kb=None)
    assert [g.need_ids for g in found] == [(3, 4)]
    assert "foncier" in found[0].objects


def test_the_radar_groups_needs_that_name_one_site() -> None:
    """Firms of different trades that want premises on one named site are one group; a firm
    that wants land for itself elsewhere stays alone."""
    items = [
        _item(1, "Bessoncourt", "90", "Nous cherchons 1 500 m² d'atelier à l'Aéroparc de Fontaine ; "
                                "un bâtiment locatif partagé avec d'autres PME nous irait."),
        _item(2, "Belfort", "90", "Nous quittons la pépinière et cherchons 600 m² pour assembler nos "
                            "cartes électroniques, le plus logique serait l'Aéroparc."),
        _item(3, "Fontaine", "90", "Les lots de l'Aéroparc font 1 ha minimum, il nous faut 2 500 m². "
                             "Un bâtiment commun découpé en cellules ?"),
        _item(4, "Delle", "90", "Nous voulons acheter le terrain voisin pour agrandir notre usine."),
    ]
    found = find_groups(items, kb=None)
    assert {frozenset(g.need_ids) for g in found} == {frozenset({1, 2, 3})}
    # the animator reads the site, as the firms wrote it
    assert found[0].site == "Aéroparc de Fontaine"
    # (premises asked for without a word of the lexicon are about land: foncier)
    assert _plain(describe(found[0])) == ("3 entreprises : foncier à aménager (friche, terrain) · "
                                          "site : Aéroparc de Fontaine")


def test_a_brownfield_group_names_its_site() -> None:
    """Three firms after the steelworks' land of Gandrange, written three ways: one group
    about land, with the site's name."""
    items = [
        _item(1, "Gandrange", "57", "Nous sommes à l'étroit. Les terrains de l'ancienne aciérie "
                                    "de Gandrange seraient parfaits, nous voudrions 1 ha."),
        _item(2, "Rombas", "57", "Madame, Monsieur, nous cherchons 2 à 3 hectares ; l'ancien "
                                 "site sidérurgique de Gandrange pourrait être requalifié."),
        _item(3, "Amnéville", "57", "on cherche du terrain, la friche arcelor de gandrange "
                                    "c'est a 5 min, a plusieurs ca pese plus"),
    ]
    found = find_groups(items, kb=None)
    assert [g.need_ids for g in found] == [(1, 2, 3)]
    assert found[0].site == "Gandrange"
    assert _plain(describe(found[0])).endswith("· site : Gandrange")


def test_a_disused_building_is_a_site_by_what_it_was() -> None:
    """« L'ancienne laiterie » and « l'ex-laiterie de la Noë » are one site; a cheese-maker
    hiring moulders is no firm after that dairy's premises."""
    items = [
        _item(1, "Argentan", "61", "Nous voulons un atelier de 1 200 m² pour assembler nos "
                                   "vans. Le site de l'ex-laiterie de la Noë serait idéal."),
        _item(2, "Sarceaux", "61", "Nous fabriquons des boîtes à camembert, notre atelier est "
                                   "trop petit : l'ancienne laiterie, un lot de 800 m² ?"),
        _item(3, "Écouché-les-Vallées", "61", "Notre fromagerie recherche quatre mouleurs et "
                                              "deux affineurs, le savoir-faire se perd."),
        _item(4, "Argentan", "61", "Fromagerie : nous cherchons des ouvriers fromagers, "
                                   "débutants acceptés, on forme."),
    ]
    found = find_groups(items, kb=None)
    assert {frozenset(g.need_ids) for g in found} == {frozenset({1, 2}), frozenset({3, 4})}


def _plain(text: Text) -> str:
    """The words of a rendered text, without its styles."""
    return "".join(span.text for block in text.blocks for span in block.spans)
