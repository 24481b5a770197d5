"""Mutualisation radar: groups of open needs shared by several firms (bot.services.radar)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from datetime import date
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.services.mutualisation import describe
from bot.services.radar import (
    DEFAULT_THRESHOLD,
    Group,
    NeedItem,
    _average_linkage,
    find_groups,
    group_key,
    pair_scores,
)
from knowledge.retrieval import KnowledgeBase
from knowledge.taxonomy import THEME_KEYS
from knowledge.text import default_lexicon, words

CORPUS = Path(__file__).resolve().parent.parent / "knowledge" / "eval" / "radar_needs.yaml"
TODAY = date(2026, 11, 28)

Pair = tuple[int, int]


def _load() -> list[dict[str, Any]]:
    """The corpus rows, as written in the YAML file."""
    data = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return list(data["needs"])


ROWS = _load()


def _item(row: dict[str, Any]) -> NeedItem:
    """A corpus row as the radar sees it."""
    return NeedItem(
        need_id=row["id"],
        reference=row["reference"],
        theme=row["theme"],
        text=row["text"],
        firm=row["firm"],
        commune=row.get("commune"),
    )


ITEMS = [_item(r) for r in ROWS]
BY_ID = {r["id"]: r for r in ROWS}
# Two needs about a trade the lexicon does not know: scored on their words.
GLAZIER = [
    NeedItem(1, "TI-1", "recrutement", "cherche un vitrier pour poser nos vitrines", "A", None),
    NeedItem(2, "TI-2", "recrutement", "recrute vitrier", "B", None),
]


def _expected_groups() -> set[frozenset[int]]:
    """The groups marked in the corpus."""
    groups: dict[str, set[int]] = {}
    for row in ROWS:
        if row.get("group"):
            groups.setdefault(row["group"], set()).add(row["id"])
    return {frozenset(g) for g in groups.values()}


def _pairs(groups: Iterable[frozenset[int]]) -> set[Pair]:
    """Every pair of needs put together by a set of groups."""
    out: set[Pair] = set()
    for g in groups:
        out.update(combinations(sorted(g), 2))
    return out


def _precision_recall(found: list[Group]) -> tuple[float, float]:
    """Pair precision and recall of found groups against the corpus marks."""
    got = _pairs([frozenset(g.need_ids) for g in found])
    want = _pairs(_expected_groups())
    hit = len(got & want)
    precision = hit / len(got) if got else 1.0
    recall = hit / len(want) if want else 1.0
    return precision, recall


def _group_with(groups: list[Group], need_id: int) -> Group:
    """The group holding a need."""
    return next(g for g in groups if need_id in g.need_ids)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    """The shipped programme cards, with a fixed date."""
    return KnowledgeBase.load(today=TODAY)


@pytest.fixture(scope="module")
def groups(kb: KnowledgeBase) -> list[Group]:
    """The radar's groups on the corpus, with the knowledge base."""
    return find_groups(ITEMS, kb=kb)


# -- the corpus ----------------------------------------------------------------------------------


def test_corpus_shape() -> None:
    """The corpus is big enough and its marks are consistent."""
    assert len(ROWS) >= 40
    assert len({r["id"] for r in ROWS}) == len(ROWS)
    assert all(r["theme"] in THEME_KEYS for r in ROWS)
    expected = _expected_groups()
    assert len(expected) == 5
    singletons = [r for r in ROWS if not r.get("group")]
    assert len(singletons) >= 25
    # every marked group holds at least two firms
    for g in expected:
        assert len({BY_ID[i]["firm"] for i in g}) >= 2


def test_corpus_groups_exact(groups: list[Group]) -> None:
    """The radar finds exactly the marked groups, and no singleton is grouped."""
    # Measured: pair precision 1.0 and recall 1.0 (12 expected pairs), with and without the
    # knowledge base. Margin: the weakest right pair scores 0.48 (soudeurs TIG / soudure
    # semi-auto), the closest wrong pairs 0.42 (export au Canada / commercial export, one
    # firm) and 0.38 (recruter un soudeur / robotiser la soudure); threshold 0.45.
    assert {frozenset(g.need_ids) for g in groups} == _expected_groups()
    precision, recall = _precision_recall(groups)
    assert (precision, recall) == (1.0, 1.0)


def test_corpus_without_knowledge_base() -> None:
    """Words and themes alone keep the marked groups; no programme is proposed."""
    found = find_groups(ITEMS, kb=None)
    precision, recall = _precision_recall(found)
    assert precision >= 0.9
    assert recall >= 0.8
    assert all(g.programmes == () for g in found)


def test_near_misses_stay_apart(kb: KnowledgeBase) -> None:
    """Needs that look alike but are not the same need score below the threshold."""
    scores = pair_scores(ITEMS, kb=kb)
    near_misses = [
        (101, 201),  # soudeur / vendeur
        (102, 228),  # recruter un soudeur / robotiser la soudure
        (132, 203),  # apprenti tourneur-fraiseur / apprentie en compta
        (131, 211),  # apprentis en usinage / logement des alternants
        (133, 218),  # usinage CNC en alternance / financer un tour à commande numérique
        (111, 204),  # presse CLT à partager / presse plieuse en panne
        (112, 217),  # panneaux CLT / sciures à valoriser
        (121, 205),  # terrain, friche / local de stockage à louer
        (121, 206),  # terrain pour construire / extension bloquée par le PLU
        (141, 225),  # bus pour la zone / parking poids lourds sur la zone
        (203, 222),  # apprentie comptable / assistante RH à temps partagé
        (209, 221),  # exporter au Canada / commercial germanophone (one firm, besides)
    ]
    for a, b in near_misses:
        assert scores.get((a, b), 0.0) < DEFAULT_THRESHOLD, (a, b)


def test_same_firm_is_not_a_group(kb: KnowledgeBase) -> None:
    """Two needs of one firm are not a collective need; a second firm makes one."""
    first = NeedItem(1, "TI-1", "recrutement", "recrute 2 soudeurs TIG", "Métal Dupuy", None)
    again = NeedItem(2, "TI-2", "recrutement", "toujours pas de soudeur !", "METAL DUPUY", None)
    other = NeedItem(3, "TI-3", "recrutement", "cherche soudeur MIG", "Chaudronnerie Vial", None)
    assert pair_scores([first, again], kb=kb)[(1, 2)] >= DEFAULT_THRESHOLD
    assert find_groups([first, again], kb=kb) == []
    (group,) = find_groups([first, again, other], kb=kb)
    assert group.need_ids == (1, 2, 3)
    assert group.firms == 2  # firms are counted, not needs
    assert describe(group).plain().startswith("2 entreprises ")


# -- what a group says ---------------------------------------------------------------------------


def test_group_fields(groups: list[Group]) -> None:
    """Keys, references, themes, similarities and programmes are consistent."""
    for g in groups:
        assert g.need_ids == tuple(sorted(g.need_ids))
        assert g.references == tuple(BY_ID[i]["reference"] for i in g.need_ids)
        assert g.key == group_key(g.need_ids)
        assert len(g.key) == 16
        assert g.theme in THEME_KEYS
        assert 0.0 < g.similarity <= 1.0
        assert g.similarity >= DEFAULT_THRESHOLD  # the mean that allowed the last merge
        assert len(g.programmes) <= 3
        assert len({cid for cid, _ in g.programmes}) == len(g.programmes)
    # biggest groups first
    sizes = [len(g.need_ids) for g in groups]
    assert sizes == sorted(sizes, reverse=True)


def test_group_key_is_sha256_of_sorted_ids() -> None:
    """The key hashes the sorted ids, whatever order they come in."""
    expected = hashlib.sha256(b"3,12,40").hexdigest()[:16]
    assert group_key([40, 3, 12]) == expected
    assert group_key((3, 12, 40)) == expected
    assert group_key([3, 12]) != expected


def test_reasons(groups: list[Group]) -> None:
    """Each group is explained by the words its needs share, with its number of firms."""
    reasons = {g.need_ids: describe(g).plain() for g in groups}
    assert reasons[(101, 102, 103, 104)] == "4 entreprises : soudeurs à recruter ou former"
    assert reasons[(111, 112)] == "2 entreprises : presse à bois lamellé-croisé (CLT) à partager"
    assert reasons[(121, 122)] == "2 entreprises : foncier à aménager (friche, terrain)"
    assert reasons[(131, 132, 133)] == (
        "3 entreprises : usineurs (tourneurs, fraiseurs) à recruter ou former")
    # « bus » and « navette »: no word in common, the object's name is given
    assert reasons[(141, 142)] == "2 entreprises : navette pour les salariés"
    # a group about no known object is still explained by its shared words
    (group,) = find_groups(GLAZIER, kb=None)
    assert describe(group).plain() == "2 entreprises cherchent à recruter : vitrier"


def test_no_firm_name_in_reasons(groups: list[Group]) -> None:
    """A reason never names a firm of the territory, even one named in a text."""
    lexicon = default_lexicon()
    firm_words = {
        w for r in ROWS for w in words(r["firm"]) if len(w) >= 3 and not lexicon.is_stop(w)
    }
    for g in groups:
        assert not firm_words & set(words(" ".join(g.words))), g.words
    # two firms that write their (shared) family name in their texts
    items = [
        NeedItem(1, "TI-1", "recrutement", "Chez Dufour on recrute 2 soudeurs", "Dufour Métal", None),
        NeedItem(2, "TI-2", "recrutement", "Dufour Frères cherche un soudeur", "Dufour Frères", None),
    ]
    (group,) = find_groups(items, kb=None)
    assert "dufour" not in describe(group).plain().casefold()
    assert "soudeur" in " ".join(group.words)


def test_programmes_of_the_welding_group(groups: list[Group]) -> None:
    """Welders: a collective training (POEC or école de production) comes first."""
    welding = _group_with(groups, 101)
    ids = [cid for cid, _ in welding.programmes]
    assert {"poec", "ecoles_de_production"} & set(ids)
    assert ids[0] in {"poec", "ecoles_de_production"}
    titles = dict(welding.programmes)
    assert "POEC" in titles.get("poec", "POEC")


def test_programmes_of_the_land_group(groups: list[Group]) -> None:
    """A brownfield for two firms: the friches / recyclage foncier card comes first."""
    land = _group_with(groups, 121)
    assert land.programmes[0][0] == "fonds_friches_recyclage_foncier"


def test_programmes_of_the_shared_press(groups: list[Group]) -> None:
    """A press to share between sawmills: Manufactures de proximité."""
    press = _group_with(groups, 111)
    assert "manufactures_de_proximite" in [cid for cid, _ in press.programmes]


# -- stability, sizes, edge cases ----------------------------------------------------------------


def test_groups_do_not_depend_on_input_order(kb: KnowledgeBase, groups: list[Group]) -> None:
    """Shuffled input gives the same groups, keys, reasons and programmes."""
    for seed in range(3):
        shuffled = list(ITEMS)
        random.Random(seed).shuffle(shuffled)
        assert find_groups(shuffled, kb=kb) == groups


def test_key_survives_other_needs(kb: KnowledgeBase, groups: list[Group]) -> None:
    """A group keeps its key when unrelated needs come and go (a dismissal stays valid)."""
    welding = _group_with(groups, 101)
    fewer = [i for i in ITEMS if i.need_id in welding.need_ids or i.need_id > 200]
    assert _group_with(find_groups(fewer, kb=kb), 101).key == welding.key


def test_min_size(kb: KnowledgeBase) -> None:
    """Groups hold at least min_size distinct firms."""
    three = find_groups(ITEMS, kb=kb, min_size=3)
    assert {g.need_ids for g in three} == {(101, 102, 103, 104), (131, 132, 133)}
    assert [g.need_ids for g in find_groups(ITEMS, kb=kb, min_size=4)] == [
        (101, 102, 103, 104)
    ]
    assert find_groups(ITEMS, kb=kb, min_size=5) == []
    with pytest.raises(ValueError):
        find_groups(ITEMS, kb=kb, min_size=1)


def test_threshold(kb: KnowledgeBase) -> None:
    """A stricter threshold keeps only the closest groups; a bad one is refused."""
    strict = find_groups(ITEMS, kb=kb, threshold=0.75)
    assert all(g.similarity >= 0.75 for g in strict)
    # scored on their words, below 1
    assert len(find_groups(GLAZIER, kb=None)) == 1
    assert find_groups(GLAZIER, kb=None, threshold=0.99) == []
    with pytest.raises(ValueError):
        find_groups(ITEMS, kb=kb, threshold=0.0)


def test_empty_and_lonely_input(kb: KnowledgeBase) -> None:
    """No need, one need, or needs with nothing to say: no group."""
    assert find_groups([], kb=kb) == []
    assert find_groups(ITEMS[:1], kb=kb) == []
    blank = [NeedItem(i, f"TI-{i}", "autre", "", f"Firme {i}", None) for i in range(3)]
    assert find_groups(blank, kb=kb) == []
    assert pair_scores(blank, kb=None) == {}


def test_average_linkage_does_not_chain() -> None:
    """A~B and B~C, A and C unrelated: C does not join A and B."""
    assert _average_linkage(3, {(0, 1): 0.9, (1, 2): 0.8}, 0.5) == [[0, 1]]
    # with A~C too, the three belong together
    assert _average_linkage(3, {(0, 1): 0.9, (1, 2): 0.8, (0, 2): 0.6}, 0.5) == [[0, 1, 2]]
    # nothing above the threshold: no cluster
    assert _average_linkage(3, {(0, 1): 0.3}, 0.5) == []


def test_typos_and_sms_style() -> None:
    """Typos, plurals and SMS spelling still meet (chaudronier, soudeurs, pr, ds)."""
    items = [
        NeedItem(1, "TI-1", "recrutement", "cherche chaudronier pr atelier", "A", None),
        NeedItem(2, "TI-2", "recrutement", "Recrutement de soudeurs ds l'équipe", "B", None),
        NeedItem(3, "TI-3", "recrutement", "cherche un vendeur", "C", None),
    ]
    (group,) = find_groups(items, kb=None)
    assert group.need_ids == (1, 2)


# -- objects, the development set, the cache -----------------------------------------------------


def test_objects_in_other_words() -> None:
    """The same object in different words meets; the same words for two objects do not."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def ids(text: str) -> set[str]:
        return {o for o, w in lexicon.analyse(text).objects if w == 1.0}

    assert ids("on cherche des conducteurs de chariot") == {"cariste"}
    assert ids("on n'a personne pour les Fenwick") == {"cariste"}
    assert ids("on sous-traite toute notre peinture") == {"cabine_peinture"}
    assert ids("une ligne de thermolaquage en commun") == {"cabine_peinture"}
    assert ids("crèche interentreprises") == ids("garde d'enfants le matin") == {"creche"}
    # hard negatives: distinct objects
    assert ids("électricien du bâtiment") == {"electricien_batiment"}
    assert ids("électrotechnicien de maintenance") == {"maintenance"}
    assert ids("robot de peinture") == {"robot_peinture"}
    assert ids("recrute des peintres") == {"peintre"}
    # a firm's own matter is never poolable, unless it asks to do it with others
    assert lexicon.analyse("financer notre plieuse, la banque hésite").own
    assert lexicon.analyse("permis de construire bloqué par le PLU").own
    assert not lexicon.analyse("co-investir à plusieurs dans une plieuse").own


def test_different_themes_same_object() -> None:
    """Needs filed under different theme keys still meet on their object."""
    items = [
        NeedItem(1, "TI-1", "recrutement", "cherche un cariste CACES 3", "A", None),
        NeedItem(2, "TI-2", "competences", "former nos gars à la conduite de chariot", "B", None),
        NeedItem(3, "TI-3", "mobilite", "personne pour les Fenwick le matin", "C", None),
    ]
    (group,) = find_groups(items, kb=None)
    assert group.need_ids == (1, 2, 3)
    assert describe(group).plain() == "3 entreprises : caristes à recruter ou former"


def test_development_set_holds_the_bar(kb: KnowledgeBase) -> None:
    """The multi-territory development set: the figures reached, so regressions fail."""
    from bot.radar_eval import evaluate_part

    # (part, precision, recall) reached; dev2, dev3 and dev4 were written by other authors and
    # measured before any tuning on them (dev2 P 0.421 R 0.417, dev3 P 0.494 R 0.349, dev4
    # P 0.780 R 0.650, dev5 P 0.789 R 0.441, dev6 P 0.663 R 0.426, dev7 P 0.586 R 0.443).
    # dev4 to dev7 are below the 0.9 precision and 0.8 recall targets: their bars hold what
    # is reached
    # (session 10: a commute joins another only when each firm is on the other's corridor,
    # as the writers' brief says (same origin, same destination): dev and dev2, written
    # under looser briefs, lost 5 pairs of firms 15 to 20 km apart on one axis; « quelles
    # aides » marks a firm's own project: dev4's biomass boiler that also seeks sawdust
    # left its group, 18 wrong pairs fewer on the spent blind parts; two firms' sites more
    # than 8 km apart are two destinations unless one is on the other's way: dev3's
    # transport on demand for a whole area lost 2 pairs, the spent parts 23 wrong ones)
    bars = {"dev": (0.99, 0.92), "dev2": (0.99, 0.90), "dev3": (0.99, 0.89),
            "dev4": (0.90, 0.69), "dev5": (0.91, 0.56), "dev6": (0.95, 0.52),
            "dev7": (0.81, 0.59), "legacy": (0.9, 0.9)}
    for part, (precision, recall) in bars.items():
        score = evaluate_part(part, kb=kb)
        assert score is not None, part
        assert score.precision >= precision and score.recall >= recall, (part, score)
    dev = evaluate_part("dev", kb=kb)
    assert dev is not None and dev.needs >= 190 and dev.territories == 5


def test_analysis_cache_is_keyed_by_text() -> None:
    """A need whose text changes is analysed again; the cache stays bounded."""
    from bot.services import radar

    radar.clear_cache()
    first = [NeedItem(1, "TI-1", "recrutement", "cherche un soudeur", "A", None),
             NeedItem(2, "TI-2", "recrutement", "recrute soudeur TIG", "B", None)]
    assert len(find_groups(first, kb=None)) == 1
    changed = [first[0], NeedItem(2, "TI-2", "recrutement", "cherche un vitrier", "B", None)]
    assert find_groups(changed, kb=None) == []
    assert len(radar._BASES) == 3 <= radar.CACHE_SIZE


def test_copies_of_a_need_without_objects_are_one_node() -> None:
    """Needs saying the same words under one theme score 1 together, scored once as a node."""
    from bot.services import radar

    texts = ["cherche un vitrier pour la vitrine", "on cherche un vitrier, vitrine cassée"]
    items = [NeedItem(i, f"TI-{i}", "recrutement", texts[i % 2], f"Firme {i}", None)
             for i in range(1, 11)]
    needs = radar._analyse(sorted(items, key=lambda it: it.need_id), None)
    graph = radar._graph(needs, None)
    assert sorted(len(node) for node in graph.nodes) == [5, 5]
    # a node is what scoring its pairs one by one gives: 1.0 each
    scores = pair_scores(items, kb=None)
    assert scores[(1, 3)] == scores[(2, 4)] == 1.0
    (group,) = find_groups(items, kb=None)
    assert group.need_ids == tuple(range(1, 11))


def test_candidates_are_capped_to_the_closest_needs() -> None:
    """A need without objects is scored against its MAX_CANDIDATES closest needs only."""
    from bot.services import radar

    rng = random.Random(3)
    trades = ["vitrier", "graphiste", "juriste", "traducteur", "ebavureur", "acheteur",
              "paysagiste", "standardiste", "photographe", "serigraphe", "doreur", "tapissier",
              "relieur", "luthier", "sellier", "vannier", "plumassier", "ferronnier"]
    items = [NeedItem(i, f"TI-{i}", "autre",
                      f"cherche {rng.choice(trades)} {rng.choice(trades)} {i:x}z", f"F{i}", None)
             for i in range(1, 801)]
    needs = radar._analyse(items, None)
    graph = radar._graph(needs, None)
    links_per_node: dict[int, int] = {}
    for c, d in graph.links:
        links_per_node[c] = links_per_node.get(c, 0) + 1
        links_per_node[d] = links_per_node.get(d, 0) + 1
    # each node is linked to its own candidates and to those that chose it, never to all
    assert max(links_per_node.values()) < len(graph.nodes) - 1


def test_fold_fast_path_matches_unicode_decomposition() -> None:
    """Folding by regex gives what decomposing every character gives (accents, other scripts)."""
    import unicodedata

    from knowledge.text import fold

    def slow(text: str) -> str:
        decomposed = unicodedata.normalize(
            "NFKD", text.casefold().translate(str.maketrans(
                {"œ": "oe", "æ": "ae", "ß": "ss", "’": "'", "ʼ": "'", "`": "'"})))
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    samples = ["Décarbon'Action", "ŒUVRE à Saint-Étienne", "Çà et là, naïveté",
               "Ελληνικά", "ﬁchier", "e\u0301te\u034f", "Zürich Straße", "Привет"]
    for text in samples:
        assert fold(text) == slow(text)


def test_rules_that_read_what_the_lexicon_does_not_list() -> None:
    """Job titles, markets, shared services, skills, staff conditions, waste, own matters."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def primary(text: str) -> set[str]:
        return {o for o, w in lexicon.analyse(text).objects if w >= 0.5}

    # a job head before a known thing names a person, not the thing
    assert "entrepot" not in primary("Cherche un responsable d'entrepôt, poste cadre")
    assert lexicon.analyse("recrute un opérateur de thermoformage").jobs == frozenset()
    assert lexicon.analyse("recrute un pilote d'autoclave").jobs == {"autoclav"}
    # a country is a market only when the text sells there
    assert primary("nos chauffeurs partent travailler en Allemagne") == set()
    assert primary("trouver des clients en Allemagne avec d'autres PME") == {"export_allemagne"}
    # a shared service is an object when it is shared
    assert primary("nous recrutons une DRH à temps plein") == set()
    assert primary("une RH à temps partagé entre plusieurs PME") == {"rh"}
    # a skill is what is learnt, the trade who learns it
    assert primary("des cours d'anglais en commun pour nos soudeurs") == {"langue"}
    # a staff condition is the object, the trade who needs it
    assert primary("nos caristes n'ont pas de bus le matin") == {"transport"}
    # a waste is the object, the trade that makes it is its source
    assert primary("nos chutes de cuir : une filière commune entre maroquiniers") == {
        "dechets_cuir_textile"}
    # a firm's own matter stays alone
    assert lexicon.analyse("notre presse est en panne, qui connaît un réparateur ?").own
    assert lexicon.analyse("formation trouvée : organisme choisi, si l'OPCO finance").own


def test_word_frequency_says_how_common_a_word_is() -> None:
    """wordfreq's Zipf scale on folded words, accents or not; unknown words are 0."""
    from knowledge.frequency import zipf

    assert zipf("projet") > 5.0 > 3.0 > zipf("grenaillage") > 0.0
    assert zipf("découpe") == zipf("decoupe") > 3.0
    assert zipf("xelionzorg") == 0.0


def test_lexicon_carries_to_derived_forms_and_term_words() -> None:
    """A derived form or a word of one object's terms names it; common words and verbs do not."""
    from bot.services.radar_objects import ObjectLexicon, derivational_root
    from knowledge.text import stem

    assert derivational_root(stem("polisseur")) == derivational_root(stem("polissage"))
    assert derivational_root(stem("decolleteuse")) == derivational_root(stem("decolletage"))
    lexicon = ObjectLexicon({
        "objects": [
            {"id": "polisseur", "kind": "trade", "label": "polisseurs", "terms": ["polisseur"]},
            {"id": "dessinateur", "kind": "trade", "label": "projeteurs",
             "terms": ["projeteur"]},
            {"id": "fibre", "kind": "trade", "label": "raccordeurs", "terms": ["raccordeur"]},
            {"id": "peinture", "kind": "equipment", "label": "cabine de peinture",
             "terms": ["cabine de thermolaquage", "four de thermolaquage"]},
        ],
        "actions": {"hire": ["cherche", "recrute"], "share": ["commun"]},
    })

    def objects(text: str) -> set[str]:
        return {o for o, _ in lexicon.analyse(text).objects}

    # a derived form the lexicon does not list, rare in French: the polisher's work
    assert objects("une formation au polissage des boîtiers") == {"polisseur"}
    # a common word sharing the root (« projet », Zipf 5.4) and a verb name no trade
    assert objects("notre projet de bâtiment avance") == set()
    assert objects("personne ne sait raccorder les harnais") == set()
    # a word two terms of one object use (« thermolaquage ») names it alone...
    assert objects("du thermolaquage en commun ?") == {"peinture"}
    # ...but not when the firm hires: the thing is where the person works
    assert objects("recrute un opérateur thermolaquage") == set()


def test_a_need_without_objects_borrows_the_object_of_needs_using_its_words() -> None:
    """Words nobody listed (gougeage, xelion) carry the object of the needs that use them."""
    items = [
        NeedItem(1, "R1", "recrutement", "Nous recrutons des soudeurs pour le gougeage et le xelion.",
                 "Alpha", None),
        NeedItem(2, "R2", "competences", "Former nos soudeurs au gougeage et au xelion, à plusieurs ?",
                 "Beta", None),
        NeedItem(3, "R3", "autre", "Plus personne chez nous pour le gougeage et le xelion.",
                 "Gamma", None),
        NeedItem(4, "R4", "autre", "Notre toiture fuit, un couvreur disponible ?", "Delta", None),
    ]
    scores = pair_scores(items, kb=None)
    assert scores[(1, 3)] == scores[(2, 3)] == 1.0  # the same object, not a few shared words
    assert not any(4 in pair for pair in scores)
    (group,) = find_groups(items, kb=None)
    assert group.need_ids == (1, 2, 3) and group.objects == ("soudeur",)


def test_hiring_and_sharing_stay_apart_on_words() -> None:
    """The same rare word names a person's trade in one need and a shared lab in the other."""
    items = [
        NeedItem(1, "R1", "recrutement", "Nous cherchons un technicien en xenobiologie, CDI.",
                 "Alpha", None),
        NeedItem(2, "R2", "mutualisation", "Un plateau de xenobiologie à partager entre TPE ?",
                 "Beta", None),
    ]
    assert pair_scores(items, kb=None) == {}


def test_housing_named_as_a_work_site_is_no_staff_housing() -> None:
    """« chantiers de logements » is where an electrician works, not where staff live."""
    from bot.services.radar_objects import object_lexicon

    found = dict(object_lexicon().analyse(
        "Recherche électricien du bâtiment pour des chantiers de logements neufs à Gex.").objects)
    assert "logement" not in found and found.get("electricien_batiment") == 1.0


def test_needs_set_apart_never_share_a_group() -> None:
    """Pairs the animator separated split a group, even inside one node of like needs."""
    texts = ["cherche un cariste CACES 3", "former nos gars à la conduite de chariot",
             "personne pour les Fenwick le matin", "recrute cariste confirmé"]
    items = [NeedItem(i, f"TI-{i}", "recrutement", text, f"Firme {i}", None)
             for i, text in enumerate(texts, start=1)]
    assert [g.need_ids for g in find_groups(items, kb=None)] == [(1, 2, 3, 4)]
    # need 4 taken out (apart from each other member): the rest stays one group
    out = find_groups(items, kb=None, apart=[(4, 1), (4, 2), (4, 3)])
    assert [g.need_ids for g in out] == [(1, 2, 3)]
    # the group set aside (one set), then need 5 arrives: 5 joins one of them only
    items.append(NeedItem(5, "TI-5", "recrutement", "cherche cariste", "Firme 5", None))
    groups = find_groups(items, kb=None, apart=[(1, 2, 3, 4)])
    assert len(groups) == 1 and 5 in groups[0].need_ids and len(groups[0].need_ids) == 2
    # the same as every pair of it
    pairs = list(combinations((1, 2, 3, 4), 2))
    assert find_groups(items, kb=None, apart=pairs) == groups
    # unknown ids and a need paired with itself are ignored
    assert find_groups(items[:4], kb=None, apart=[(7, 8), (1, 1)]) == find_groups(
        items[:4], kb=None)


def test_average_linkage_keeps_apart_nodes_apart() -> None:
    """Two nodes of a forbidden pair end in different clusters; the others still merge."""
    scores = {(0, 1): 0.9, (1, 2): 0.9, (0, 2): 0.9}
    assert _average_linkage(3, scores, 0.5) == [[0, 1, 2]]
    assert _average_linkage(3, scores, 0.5, apart=[(0, 2)]) == [[0, 1]]
    # the forbidden pair follows merged clusters: 3 may not join the cluster holding 0
    four = {(0, 1): 0.9, (2, 3): 0.8, (1, 2): 0.7, (0, 2): 0.7, (0, 3): 0.7, (1, 3): 0.7}
    assert _average_linkage(4, four, 0.5, apart=[(0, 3)]) == [[0, 1], [2, 3]]
    # a set of three: at most one of them per cluster
    assert _average_linkage(4, four, 0.5, apart=[(0, 1, 2)]) == [[2, 3]]


def test_acronyms_and_own_investment() -> None:
    """An acronym term is the acronym, not a word with its stem; one firm's investment is its
    own, unless it invests with others."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()
    assert dict(lexicon.analyse("soudeur TIG confirmé").objects) == {"soudeur": 1.0}
    assert lexicon.analyse("des morceaux de tige broyés").objects == ()
    # « =foyer » in the file: the word itself, not « foie », which has its stem
    assert lexicon.analyse("Producteur de foie gras fermier").objects == ()
    # « =résidence »: « nos opérateurs résident à Brive » is no housing, nor its cue word
    assert lexicon.analyse("un tiers de nos opérateurs résident à Brive").objects == ()
    assert dict(lexicon.analyse("une résidence pour nos alternants, avec d'autres "
                                "employeurs").objects) == {"logement": 1.0}
    assert dict(lexicon.analyse("un petit foyer pour nos alternants, avec d'autres "
                                "employeurs").objects) == {"logement": 1.0}
    # a firm's own file, aid or margin (dev7)
    assert lexicon.analyse("Nous devons financer son rétrofit complet").own
    assert lexicon.analyse("Pouvons-nous bénéficier d'une aide régionale pour notre stand ?").own
    assert lexicon.analyse("Notre marge est négative sur deux références").own
    assert lexicon.analyse("On veut acheter une brodeuse Tajima. Aide à l'investissement "
                           "possible ?").own
    assert lexicon.analyse("Projet d'achat d'une découpe laser : prêt croissance ?").own
    assert lexicon.analyse("Demande de financement pour deux métiers à tisser").own
    assert not lexicon.analyse("Achat d'une découpe laser en commun avec d'autres "
                               "ateliers ?").own
    # a firm developing its own product or process (its R&D, session 9)
    assert lexicon.analyse("Nous développons un procédé de recyclage de chutes de fibres de "
                           "carbone et cherchons un laboratoire d'essais.").own
    assert lexicon.analyse("Nous mettons au point une plaque d'acétate biosourcée.").own
    assert not lexicon.analyse("Nous développons nos ventes en Allemagne : un stand commun "
                               "au salon ?").own
    # a letter about several things is not its own matter because one of them is
    letter = ("Bon, je vous écris pour plusieurs choses. On voudrait refaire notre site "
              "internet. Et le vrai problème : nos intérimaires n'ont pas de bus avant 6h30, "
              "une navette nous aiderait.")
    assert not lexicon.analyse(letter).own
    assert dict(lexicon.analyse(letter).objects) == {"transport": 1.0}
    assert lexicon.analyse("On voudrait refaire notre site internet.").own
    assert lexicon.analyse("Je vous écris pour plusieurs choses : notre trésorerie est tendue "
                           "et la banque refuse un prêt.").own
    # one sentence is read once (no reading of its sentences again)
    assert lexicon.analyse("je profite de ce message : notre trésorerie est tendue, et la "
                           "navette").own


def test_a_sector_word_is_context_not_an_object() -> None:
    """« EPDM » says which trade a firm is in, not what it asks for: firms of one sector
    asking different things are not grouped on it, nor on a word derived from it."""
    from bot.services.radar_objects import SECONDARY_WEIGHT, ObjectLexicon

    lexicon = ObjectLexicon({
        "objects": [
            {"id": "caoutchouc", "kind": "trade", "label": "régleurs de presses à caoutchouc",
             "terms": ["mouleur caoutchouc", "regleur de presses a vulcaniser"],
             "sector": ["EPDM", "elastomere", "caoutchouc"]},
            {"id": "rebuts_caoutchouc", "kind": "waste", "label": "déchets de caoutchouc",
             "terms": ["rebuts de caoutchouc", "bavures"]},
        ],
        "actions": {"hire": ["cherche", "recrute"], "share": ["commun"]},
    })
    # the sector alone: no object (the radar weighs the words instead)
    assert lexicon.analyse("Nos fournisseurs de mélanges EPDM ont augmenté leurs prix").objects == ()
    # the sector beside the object asked for: context, the waste is what is pooled
    assert dict(lexicon.analyse("Nos bavures d'EPDM partent en enfouissement : une filière "
                                "en commun ?").objects) == {"caoutchouc": SECONDARY_WEIGHT,
                                                             "rebuts_caoutchouc": 1.0}
    # the trade's own term still names it
    assert dict(lexicon.analyse("Nous cherchons un mouleur caoutchouc").objects) == {
        "caoutchouc": 1.0}


def test_a_noun_complement_only_qualifies_the_noun() -> None:
    """« rénovation d'appartements » is an electrician's work, not staff housing; « coques de
    navettes maritimes » are hulls, not a shuttle; after a word that says what is asked
    (« formation de soudeurs », « pas de bus ») or a waste (« chutes de tissus »), the
    complement is the object; a text naming nothing else keeps it."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def primary(text: str) -> set[str]:
        return {o for o, w in lexicon.analyse(text).objects if w >= 0.5}

    assert primary("Recherche électricien du bâtiment pour nos chantiers de rénovation "
                   "d'appartements") == {"electricien_batiment"}
    # (and the second complement of the same noun)
    assert primary("Cherche électricien du bâtiment pour la rénovation de chalets et "
                   "d'appartements") == {"electricien_batiment"}
    assert "transport" not in primary(
        "Recherche soudeurs aluminium pour la construction de coques de navettes maritimes")
    assert "soudeur" in primary("Une formation de soudeurs à plusieurs ?")
    assert primary("nos caristes n'ont pas de bus le matin") == {"transport"}
    assert primary("Nos salariés demandent des logements à louer") == {"logement"}
    # a waste is named by what it comes from; a lone complement is still what is asked
    assert "logement" in primary("La rénovation d'appartements pour loger nos alternants ?")


def test_an_electrician_for_flats_is_no_staff_housing_group() -> None:
    """Two firms that want housing for their apprentices are one group; the electrician hired
    to renovate flats stays out of it."""
    items = [
        NeedItem(1, "TI-1", "recrutement", "Nos apprentis ne trouvent aucun logement à louer : "
                 "une résidence pour jeunes salariés entre entreprises ?", "A", None),
        NeedItem(2, "TI-2", "autre", "Logement des alternants : nous réserverions des places "
                 "dans une résidence commune aux employeurs.", "B", None),
        NeedItem(3, "TI-3", "recrutement", "Cherche électricien du bâtiment pour la rénovation "
                 "de chalets et d'appartements.", "C", None),
    ]
    assert [g.need_ids for g in find_groups(items, kb=None)] == [(1, 2)]


def test_stretch_film_pallets_and_shipped_pallets_are_three_things() -> None:
    """The film wrapping incoming pallets is collected as plastic, broken pallets as wood;
    pallets shipped to Lyon are freight; a film named by an extrusion line is its product."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def primary(text: str) -> set[str]:
        return {o for o, w in lexicon.analyse(text).objects if w >= 0.5}

    assert primary("On jette chaque semaine une benne de film étirable, celui qui entoure les "
                   "palettes de nos fournisseurs.") == {"film_emballage"}
    assert primary("Nous accumulons des palettes bois cassées : quelqu'un les reprend ?") == {
        "emballages"}
    assert "emballages" not in primary("On expédie trois palettes par jour vers Lyon, chacun "
                                       "avec son camion à moitié vide.")
    assert "film_emballage" not in primary("Recherchons 3 conducteurs de ligne d'extrusion "
                                           "gaine (film PE) en 5x8.")


def test_a_card_quotes_the_sentence_that_puts_a_need_in_its_group() -> None:
    """The excerpt is the sentence naming the group's object, not the greeting before it."""
    from bot.services.mutualisation import EXCERPT_CHARS, excerpt
    from bot.services.radar import Group

    group = Group(key="k", need_ids=(1, 2), references=("TI-1", "TI-2"), theme="recrutement",
                  firms=2, words=("soudeurs",), similarity=0.8, programmes=(),
                  objects=("soudeur",), action="hire")
    text = ("Bonjour, je vous écris un peu de tout. Notre parking est trop petit. Mais le vrai "
            "souci : il nous faut deux soudeurs TIG avant l'été ! Merci.")
    assert excerpt(text, group) == "Mais le vrai souci : il nous faut deux soudeurs TIG avant l'été !"
    # no sentence names the object: a shared word, else the first sentence; always cut
    plain = Group(key="k", need_ids=(1, 2), references=("TI-1", "TI-2"), theme="autre",
                  firms=2, words=("covoiturage",), similarity=0.6, programmes=())
    assert excerpt("Bonjour. Un covoiturage entre Digoin et Paray ?", plain) == (
        "Un covoiturage entre Digoin et Paray ?")
    long = excerpt("x" * 5_000, plain)
    assert len(long) == EXCERPT_CHARS and long.endswith("…")


def test_every_phrase_of_the_lexicon_counts() -> None:
    """No phrase (as stemmed) is claimed by two objects, nor both a term and a sector word:
    the first claim wins silently, so the other would be dead weight that misleads its
    reader (« régleur presse » for stamping presses, « boulangerie » as a sector word)."""
    import yaml

    from bot.services.radar_objects import OBJECTS_FILE, _stems

    data = yaml.safe_load(OBJECTS_FILE.read_text(encoding="utf-8"))
    owners: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for obj in data["objects"]:
        for written in obj["terms"]:
            term = str(written).removeprefix("=")
            if str(written).startswith("=") or (term.isupper() and term.isalpha()):
                continue  # matched as written, not by stem
            key = tuple(_stems(term, keep_stops=False))
            owners.setdefault(key, set()).add((obj["id"], "term"))
        for term in obj.get("sector", ()):
            key = tuple(_stems(str(term), keep_stops=False))
            owners.setdefault(key, set()).add((obj["id"], "sector"))
    clashes = {key: sorted(claims) for key, claims in owners.items() if len(claims) > 1}
    assert clashes == {}


def test_a_word_matched_as_written_leaves_the_stem_to_others() -> None:
    """« =distillateur » (an operator) does not take « distillation » (a shared still) that
    stems alike; a term is never read off a shorter slice at the end of a text."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()
    assert dict(lexicon.analyse("un distillateur").objects) == {"agro_operateur": 1.0}
    assert dict(lexicon.analyse("la distillation en commun").objects) == {"distillation": 1.0}


def test_one_word_for_two_objects_is_read_by_its_phrase() -> None:
    """Rooms, wafers, fusion and turning name different objects in different phrases (read
    on spent blind parts: an anechoic chamber was staff housing, silicon wafers were wood
    chips, a fibre splicer was a welder, a wood turner a CNC machinist)."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def objects(text: str) -> set[str]:
        return {o for o, _ in lexicon.analyse(text).objects}

    assert "logement" not in objects("Partager une chambre froide pour nos plats surgelés")
    assert "logement" in objects("Notre apprenti ne trouve pas de chambre meublée à Metz")
    assert objects("Une chambre semi-anéchoïque pour nos essais CEM") == {"essais_cem"}
    assert objects("Un pot vibrant pour nos essais de vibration") == {"banc_essai_vibration"}
    assert "bois_dechets" not in objects("Charger les plaquettes de silicium en salle blanche")
    assert "soudeur" not in objects("Câbleurs fibre : soudure par fusion, réflectomètre")
    assert objects("Cherchons un tourneur sur bois pour nos pieds de chaises") == {"ebeniste"}
    knitting = objects("Régleur sur métiers rectilignes Stoll recherché")
    linking = objects("Nous cherchons deux remmailleuses pour monter les cols")
    sewing = objects("Nous cherchons six piqueuses sur machine plate")
    cutting = objects("Une table de coupe numérique partagée entre ateliers")
    assert len({frozenset(knitting), frozenset(linking), frozenset(sewing),
                frozenset(cutting)}) == 4
    assert "coques_fruits" in objects("Nos coquilles de noix après l'énoisage")
    # one flow, one outlet: whey, pomace and fruit culls are three collections; « Marc » is
    # a first name, « le marc » the pomace
    whey = objects("On produit 15 m3 de lactosérum par jour, le porcher arrête")
    pomace = objects("le marc on sait plus quoi en faire, ça fermente dans la cour")
    culls = objects("Nos écarts de tri et fruits déclassés partent en benne")
    assert (whey, pomace, culls) == ({"lactoserum"}, {"marcs"}, {"fruits_declasses"})
    assert "marcs" not in objects("Marc, notre chef d'atelier, part en retraite")
    # the vineyard and the cellar, fitting windows and framing: trades asked for apart
    assert objects("Cherche conducteur d'enjambeur pour les traitements") == {"viticulture"}
    assert objects("Cherchons un ouvrier de cave pour le remuage") == {"chai"}
    assert objects("Recherche poseurs de fenêtres PVC et alu") == {"poseur_menuiseries"}
    assert objects("Recherchons un charpentier-monteur pour nos chantiers") == {"charpentier"}
    assert "poseur_menuiseries" not in objects("On voudrait s'installer sur la ZA de Legé")
    # a firm's own succession or cyber-attack, in the words owners use
    own = lexicon.analyse
    assert own("J'aimerais transmettre ma menuiserie à mon chef d'atelier").own
    assert own("Nous avons subi un rançongiciel, plus de logiciel d'entrepôt").own
    assert own("Notre certification CEFRI arrive à échéance en mars : qui peut aider ?").own
    # words that stem like an action: the yard is no course, a shape no training, where a
    # shuttle starts no leaver to replace
    assert own("La sciure s'entasse dans la cour, on la donne").actions == frozenset()
    assert own("Nos copeaux sous forme de briquettes").actions == frozenset()
    assert "hire" not in own("Une navette au départ de la gare de Dole").actions
    assert objects("Soudeur PEHD : électrosoudage de canalisations") == {"soudeur_pe"}
    assert objects("Contrôleur CND niveau 2 COFREND en ressuage") == {"cnd"}
    assert objects("Notre machine de mesure tridimensionnelle est libre") == {"labo_essais"}
    # « car » is a stop word (because), but not after a determiner: the coach
    assert objects("Un car partagé le matin pour nos soudeurs ?") >= {"transport"}
    assert "transport" not in objects("Nous recrutons car nous manquons de soudeurs")
    # a narrower object named with its wider one is what the text is about
    assert objects("Recherchons câbleurs-raccordeurs fibre optique (FTTH)") == {"fibre_telecom"}
    assert objects("Recherchons des câbleurs d'armoires électriques") == {"cableur"}
    assert "chaleur" in objects("Nos électrolyseurs rejettent de la chaleur à 50 °C")


def test_trades_and_machines_written_in_their_own_words_are_read() -> None:
    """A fish filleter, a lace tulliste, a cutlery grinder, a CT scanner, shellfish
    purification are read as their objects, and the same word for another thing stays
    apart (needs of spent parts that read no object: « lever les filets », « émouleur »,
    « scan RX »; a fishing net is no filleter, threading a screw no fish, a hydraulics
    fitter's « harnais » no loom)."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()

    def objects(text: str) -> set[str]:
        return {o for o, _ in lexicon.analyse(text).objects}

    assert objects("Cherchons des fileteurs pour lever les filets de lieu à la main") == {
        "fileteur"}
    assert "fileteur" not in objects("Nos vieux filets de pêche en polyamide à recycler")
    assert "fileteur" not in objects("Tournage, filetage et taraudage de pièces inox")
    assert objects("Former des tullistes sur nos métiers Leavers") == {"tulliste"}
    assert objects("Nous cherchons un émouleur pour l'émouture des lames") == {"polisseur"}
    assert objects("Un tomographe à rayons X partagé pour contrôler nos pièces") == {
        "labo_essais"}
    assert objects("Des bassins de purification des huîtres en commun") == {
        "purification_coquillages"}
    assert objects("Une unité de lavage de bouteilles pour le verre consigné") == {
        "lavage_bouteilles"}
    assert objects("Recherche deux agréeurs fruits et légumes") == {"agreeur"}
    assert objects("Mécanicien agricole pour réparer les tracteurs") == {"mecanicien_agricole"}
    assert "mecanicien_agricole" not in objects("Recherche mécanicien poids lourds")
    assert objects("Opérateurs de forge sur presse à matricer") == {"emboutissage"}
    assert objects("Former à la pyrotechnie nos opérateurs d'ateliers poudre") == {
        "pyrotechnie"}
    assert objects("Nos tisserands en basse lisse partent à la retraite") == {"lissier"}
    assert "creche" in objects("Où faire garder les drôles à 5 h du matin ?")
    assert "transport" in objects("Nos jeunes n'ont pas le permis, aucun moyen de locomotion")


def test_an_ignored_phrase_never_swallows_a_lone_word() -> None:
    """A phrase of several words to ignore keeps two stems once its stop words are gone:
    « logement possible » (« possible » is a stop word) would have ignored every
    « logement », « séchage du maïs » every « séchage »."""
    from bot.services.radar_objects import OBJECTS_FILE, _stems

    data = yaml.safe_load(OBJECTS_FILE.read_text(encoding="utf-8"))
    lone = [phrase for phrase in data["ignore"]
            if len(str(phrase).split()) > 1 and len(_stems(str(phrase), keep_stops=False)) < 2]
    assert lone == []


def test_a_firm_asking_which_aid_is_its_own_project() -> None:
    """« Quelles aides existent ? » for one's own roof is one firm's project; the same
    question about a training set up with others is not. A firm sold « à un groupe du
    secteur » is no firm acting with others (« groupe » has the stem of « groupement »)."""
    from bot.services.radar_objects import object_lexicon

    lexicon = object_lexicon()
    assert lexicon.analyse("Des panneaux photovoltaïques sur la toiture de notre usine : "
                           "quelles aides existent ?").own
    assert not lexicon.analyse("Quelles aides pour monter une formation de soudeurs à "
                               "plusieurs ?").own
    sold = lexicon.analyse("Pas de repreneur : nous cherchons un accompagnement pour la "
                           "transmission de l'entreprise, idéalement à un groupe du secteur.")
    assert "share" not in sold.actions
    assert lexicon.analyse("Une commande groupée de panneaux solaires ?").actions == {"share"}
    # land wanted anywhere is one firm's own search
    assert lexicon.analyse("Nous cherchons un terrain de 2 ha, peu importe la commune.").own
    # « la commune » is the town, « une formation commune » firms acting together
    assert "share" not in lexicon.analyse("La commune veut découper l'usine.").actions
    assert "share" in lexicon.analyse("Une formation commune aux ateliers ?").actions


def test_a_narrowed_object_must_exist() -> None:
    """« narrows: » names objects of the lexicon: a misspelt id fails at load, not silently."""
    from bot.services.radar_objects import OBJECTS_FILE, ObjectLexicon

    data = yaml.safe_load(OBJECTS_FILE.read_text(encoding="utf-8"))
    data["objects"][0]["narrows"] = ["no_such_object"]
    with pytest.raises(ValueError, match="no_such_object"):
        ObjectLexicon(data)
