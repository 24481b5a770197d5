"""Where a need's shuttle, land or housing is, for the radar: the places its text names.

A shuttle serves one corridor, a brownfield is one site: two needs about a shuttle are one
collective action only when their corridors meet (Pau → Lacq is not Tarbes → Bagnères), two
needs about land only when they aim at the same site, two about staff housing only near the
same site. The lexicon (radar_objects) says *what* (transport, foncier, logement); this
module says *where*, from three things no list of this project has to name:

- communes named in the text (« habitent Landerneau », « la friche de Gandrange »), resolved
  with the communes table (knowledge/geography.py) near the firm: « Clermont » read from
  Thiers is Clermont-Ferrand, also by its first words (« Montceau », « Saint-Nicolas »); a
  name rare in general French is read in lower case too (« la friche de gandrange »);
- other names written with a capital and rare in French (« Technoland », « Hauts
  Banquets », « Aéroparc »): a zone, a site or a brownfield, compared by name;
- the firm's own commune: where its staff go, the end of a shuttle's corridor.

A need that names no place says nothing against any other: it is never set apart on places.
An export need is compared by the trade fairs and fair cities it names (MARKET, read by
bot/services/radar_fairs.py).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from bot.services.radar_fairs import fair_index
from bot.services.radar_objects import FORMER_BUILDING
from knowledge.frequency import zipf
from knowledge.geography import Commune, Geography, default_geography, normalize_name

__all__ = ["LAND", "Places", "candidate_pairs", "compatible", "home_of", "place_rule",
           "read_places", "speaks_of_premises"]

# How the radar objects that are somewhere are compared (radar_objects.yaml kinds and ids):
# a commute's corridor, one site (land, and what cannot travel far: heat, steam, a zone's
# canteen or guard, a rail siding), one basin (staff housing, childcare).
CORRIDOR, SITE, BASIN, MARKET = "corridor", "site", "basin", "market"
# land or premises: one site (SITE), and a site someone names (LAND)
LAND = "land"
# (an export mission is somewhere too: at one trade fair, bot/services/radar_fairs.py)
_RULE_OF_KIND: dict[str, str] = {"route": CORRIDOR, "land": LAND, "housing": BASIN,
                                 "childcare": BASIN, "export": MARKET}
_RULE_OF_OBJECT: dict[str, str] = {
    "chaleur": SITE, "vapeur": SITE, "restauration": SITE, "securite_site": SITE,
    "embranchement_ferre": SITE,
}


def place_rule(object_id: str, kind: str) -> str | None:
    """How two needs about this object must meet (CORRIDOR, SITE, BASIN), or None."""
    return _RULE_OF_OBJECT.get(object_id) or _RULE_OF_KIND.get(kind)

# A commune named in a text is looked for this close to the firm (km): farther, the word is
# another place of the same name (there are 18 communes called Clermont-something).
NEAR_KM = 80.0
# A commune named by its first words only (« Montceau ») must be this close to the firm.
PREFIX_KM = 45.0
# Two ends of commutes (where staff live, where they work) are one when this close.
ORIGIN_KM = 12.0
# A place this close to the way between two ends of another commute lies on its corridor.
AXIS_KM = 8.0
# Two firms' sites this close are one destination of commuters (one zone, one town's side);
# farther apart, one must lie this close to the other's way.
DESTINATION_KM = 8.0
ON_WAY_KM = 4.0
# Two sites of land named are one site when this close; staff housing, one basin.
SITE_KM = 6.0
HOUSING_KM = 25.0
# A firm that names no site looks for land around its own commune: this far (km).
LAND_HOME_KM = 15.0
# A word is read as a place in lower case only when it is this rare in general French (Zipf):
# « gandrange » yes, « vire » (the verb) no.
MAX_LOWER_ZIPF = 2.5
# A capitalised name that is no commune is a site's name when one of its words is this rare.
MAX_NAME_ZIPF = 3.0
_MAX_WINDOW = 5  # words of the longest commune name tried (« Saint-Just-Saint-Rambert »)

# Capitalised words that say who or what, never where (titles, institutions, days).
_NOT_PLACES: frozenset[str] = frozenset(
    """
    monsieur madame messieurs mesdames bonjour cordialement merci region departement etat
    france europe lundi mardi mercredi jeudi vendredi samedi dimanche
    """.split()
)
# A word (with its inner hyphens and apostrophes: Grand'Combe-Châteleu), an elided article
# apart (« l'Aéroparc » is « l' » and « Aéroparc »), or a number.
_WORD = re.compile(
    r"\b(?:[ldjmnstc]|qu)['’](?=[^\W\d_])|[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")
_CONNECTORS = frozenset({"de", "du", "des", "la", "le", "les", "sur", "sous", "en", "lez",
                         "d", "l", "aux"})


@dataclass(frozen=True, slots=True)
class Places:
    """The places of one need: communes named (points), other names, the firm's commune."""

    points: tuple[tuple[float, float], ...] = ()  # (lat, lon) of the communes named
    names: frozenset[str] = frozenset()  # folded names of sites that are no commune
    home: tuple[float, float] | None = None  # (lat, lon) of the firm's commune
    codes: frozenset[str] = frozenset()  # INSEE codes of the communes named
    # trade fairs named (radar_fairs), and the cities abroad of fairs named or named alone
    fairs: frozenset[str] = frozenset()
    fair_cities: frozenset[str] = frozenset()
    # what disused buildings named were (« l'ancienne laiterie » -> laiterie)
    former: frozenset[str] = frozenset()
    # the communes named as where the staff go (« jusqu'à Pierrelatte », « vers Sophia »),
    # not where they come from
    toward: tuple[tuple[float, float], ...] = ()
    # whether the text aims at one site, named or not (« la ZA de Legé », « la zone de
    # l'aérodrome », « le bâtiment vacant de la ZI n°3 »), rather than searching anywhere
    designated: bool = False
    # how the text wrote its site names (folded name -> as written), for the animator
    written: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    # the ends of its commute (the communes named, the firm's commune) and their box
    # (lat and lon, low and high, widened by the corridor margin): computed once, compared
    # with many other needs
    ends: tuple[tuple[float, float], ...] = field(init=False, compare=False, repr=False)
    box: tuple[float, float, float, float] | None = field(init=False, compare=False,
                                                          repr=False)
    # where its staff come from (_origins), also computed once
    origins: tuple[tuple[float, float], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Compute the ends, their box and the origins."""
        ends = (*self.points, self.home) if self.home else self.points
        object.__setattr__(self, "ends", ends)
        object.__setattr__(self, "origins", _origins(self))
        box = None
        if ends:
            margin = max(ORIGIN_KM, AXIS_KM) / _KM_PER_DEGREE
            lats = [e[0] for e in ends]
            lons = [e[1] for e in ends]
            # (a degree of longitude is shorter than one of latitude: a wider margin, with
            # some slack for the latitude span)
            lon_margin = margin / _COS[min(900, abs(round(max(lats, key=abs) * 10)))] * 1.2
            box = (min(lats) - margin, min(lons) - lon_margin,
                   max(lats) + margin, max(lons) + lon_margin)
        object.__setattr__(self, "box", box)

    @property
    def named(self) -> bool:
        """Whether the text names a place at all."""
        return bool(self.points or self.names)

    def label(self, key: str) -> str:
        """A site key as the animator reads it: the commune's name, or the name as written."""
        if key.isdigit() or (len(key) == 5 and key[:2] in {"2A", "2B"}):
            commune = default_geography().by_insee(key)
            if commune is not None:
                return commune.name
        return dict(self.written).get(key, key)

    @property
    def sites(self) -> frozenset[str]:
        """Keys of the places named: a site's folded name, a commune's INSEE code."""
        return self.names | self.codes


_KM_PER_DEGREE = 6371.0 * math.pi / 180.0
# cos(latitude) by tenth of a degree: the distances are compared by the hundred thousand on
# a big territory, and a table lookup is cheaper than a cosine
_COS: tuple[float, ...] = tuple(math.cos(math.radians(t / 10)) for t in range(901))


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance in km (flat projection at the pair's latitude: exact enough under 200 km)."""
    dx = (b[1] - a[1]) * _COS[min(900, abs(round((a[0] + b[0]) * 5)))]
    return _KM_PER_DEGREE * math.hypot(dx, b[0] - a[0])


def _meet(a: Places, b: Places, radius: float) -> bool:
    """Whether two needs may name one place: the same site name, communes this close, or
    places that cannot be compared (a site's name on one side, communes on the other)."""
    if a.names & b.names:
        return True
    if any(_km(p, q) <= radius for p in a.points for q in b.points):
        return True
    comparable = (a.points and b.points) or (a.names and b.names)
    return not comparable


def compatible(rule: str, a: Places, b: Places) -> bool:
    """Whether two needs about one object (compared by ``rule``) can be one action."""
    # (candidate_pairs below lists every pair this may accept: change both together)
    if rule == CORRIDOR:
        # a corridor's ends: where the staff live (the places named) and where they work
        # (the firm's commune). One corridor when every end of one need is near an end of
        # the other (Vire → Flers and Flers ← Vire; Noeux → Haisnes within Bruay → Douvrin),
        # not when one end is elsewhere (Belfort → Rougemont is not Belfort → Technoland).
        # where the staff come from, when both needs say it, must also be one town or one
        # road (Andernos → Aéroparc is not Bordeaux's tram → Aéroparc; Antibes station →
        # Sophia is not Grasse → Sophia), or the same road ridden both ways (Vire → Flers,
        # Flers → Vire): _same_origins, checked last (the cheaper tests part most pairs)
        if a.names & b.names:
            return _same_origins(a, b)
        if not a.ends or not b.ends:
            return True  # (no end: no origin either)
        # where the staff go is the firm's own site: each firm must be near the other's
        # corridor, or the two are two destinations of one origin (Mantes → Flins is not
        # Mantes → Bonnières, Luchon → Saint-Gaudens is not Saint-Gaudens → Lannemezan);
        # and the two sites are one zone, or one lies on the other's way (Caen → Blainville
        # is not Caen → Troarn, 12 km apart on two sides of the town)
        if a.home and b.home and not (
                _reached(a.home, b) and _reached(b.home, a)
                and (_km(a.home, b.home) <= DESTINATION_KM
                     or _on_way(b.home, a) or _on_way(a.home, b))):
            return False
        # (either way: one need names fewer places than the other, its ends are enough)
        return (_covered(a, b) or _covered(b, a)) and _same_origins(a, b)
    if rule == MARKET:
        # one mission: the same fair, or a fair and its city (ProWein / « Düsseldorf »), when
        # both say which; MEDICA is not Ambiente, Düsseldorf is not Frankfurt
        if not (a.fairs or a.fair_cities) or not (b.fairs or b.fair_cities):
            return True
        if a.fairs & b.fairs:
            return True
        if a.fairs and b.fairs:
            return False
        return bool(a.fair_cities & b.fair_cities)
    if rule == LAND:
        # one land project is one site someone names (« la friche Philips », « l'ancienne
        # tannerie », « la ZAC de Sarliève »): two firms each looking for a plot near their
        # own commune, or « n'importe où près de l'A31 », are two searches, not one project
        if not ((a.names or a.former or a.designated) and (b.names or b.former or b.designated)):
            return False
        rule = SITE
    if rule == BASIN:
        # staff housing is sought for a whole basin, near the sites where the staff work
        return not (a.named and b.named) or _meet(_with_home(a), _with_home(b), HOUSING_KM)
    # land: the site named, else where the firm is (it looks near its own commune)
    if a.named and b.named:
        if not (a.points and b.points) and not (a.names and b.names):
            # a site known by its name only (« le Saut du Tarn ») and communes on the other
            # side: the named site is taken to be near the firm that names it
            by_name, by_commune = (a, b) if a.names else (b, a)
            if by_name.home is not None:
                return any(_km(by_name.home, q) <= LAND_HOME_KM for q in by_commune.points)
        return _meet(a, b, SITE_KM)
    if a.named or b.named:
        named, other = (a, b) if a.named else (b, a)
        if not named.points or other.home is None:
            return True  # a site known by its name only: nothing to compare a commune with
        return _meet(named, Places(points=(other.home,)), LAND_HOME_KM)
    return a.home is None or b.home is None or _km(a.home, b.home) <= LAND_HOME_KM


# The grid of candidate_pairs: cells of this many degrees (28 km of latitude, more than the
# largest radius compared), and the most cells a box is looked up in (a wider box, from
# communes far apart read without a firm's commune, is compared with every point instead).
CELL_DEGREES = 0.25
_MAX_CELLS = 64
# Slack on a radius turned into a box of degrees, for the rounding of _km.
_SLACK = 1.01

_Point = tuple[float, float]
_Box = tuple[float, float, float, float]


def candidate_pairs(rule: str, places: Sequence[Places | None]) -> set[tuple[int, int]]:
    """Pairs (i < j) of positions whose places ``compatible`` may accept under ``rule``."""
    if rule == LAND:
        rule = SITE  # (LAND accepts fewer pairs than SITE: SITE's are a superset)
    # Every pair compatible() accepts is here, and usually few more: the places it accepts
    # with any other without geometry (no end, no place named, no firm's commune, a site
    # known by its name only) are paired with all; the others with those sharing a site
    # name, a fair or a fair city, or near enough, found with a grid. The radar scores these
    # pairs instead of all pairs: on a big territory most shuttles and sites are far apart.
    free: list[int] = []
    keyed: dict[Hashable, list[int]] = defaultdict(list)
    located: list[tuple[int, Places]] = []
    for i, p in enumerate(places):
        # (a need whose places were not read is compared on its objects alone)
        if p is None or _free(rule, p):
            free.append(i)
            continue
        if rule == MARKET:
            for key in (*(("fair", f) for f in p.fairs), *(("city", c) for c in p.fair_cities)):
                keyed[key].append(i)
            continue
        for name in p.names:
            keyed[name].append(i)
        located.append((i, p))
    pairs: set[tuple[int, int]] = set()
    for i in free:
        pairs.update((min(i, j), max(i, j)) for j in range(len(places)) if j != i)
    for members in keyed.values():
        pairs.update((members[x], members[y])
                     for x in range(len(members)) for y in range(x + 1, len(members)))
    if rule == CORRIDOR:
        pairs |= _corridor_pairs(located)
    elif rule == BASIN:
        spots = [(i, point) for i, p in located for point in _with_home(p).points]
        pairs |= _near_pairs(spots, spots, HOUSING_KM)
    elif rule == SITE:
        # two sites named meet within SITE_KM; a site and a firm's commune, or two firms'
        # communes (no site named), within LAND_HOME_KM
        sites = [(i, point) for i, p in located if p.named for point in p.points]
        homes = [(i, p.home) for i, p in located if not p.named and p.home is not None]
        pairs |= _near_pairs(sites, sites, SITE_KM)
        pairs |= _near_pairs(sites + homes, homes, LAND_HOME_KM)
    return pairs


def _free(rule: str, p: Places) -> bool:
    """Whether ``compatible`` may accept these places with others whatever they are."""
    if rule == LAND:
        rule = SITE
    if rule == MARKET:
        return not (p.fairs or p.fair_cities)
    if rule == CORRIDOR:
        return not p.ends
    if rule == BASIN:
        # names no place, or sites by name only without a firm's commune (not comparable
        # with communes)
        return not p.named or not _with_home(p).points
    if rule == SITE:
        return not p.points if p.named else p.home is None
    return True


def _corridor_pairs(located: list[tuple[int, Places]]) -> set[tuple[int, int]]:
    """Pairs where every end of one lies in the other's box (as _covered requires)."""
    # every end in the box: the ends' own bounds within the box's
    bounds: dict[int, _Box] = {}
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, p in located:
        lats = [end[0] for end in p.ends]
        lons = [end[1] for end in p.ends]
        bounds[i] = (min(lats), min(lons), max(lats), max(lons))
        grid[_cell(p.ends[0])].append(i)
    pairs: set[tuple[int, int]] = set()
    for j, p in located:
        assert p.box is not None
        lat_lo, lon_lo, lat_hi, lon_hi = p.box
        cells = _cells_of(p.box)
        found = bounds if cells is None else (i for cell in cells for i in grid.get(cell, ()))
        for i in found:
            b = bounds[i]
            if lat_lo <= b[0] and b[2] <= lat_hi and lon_lo <= b[1] and b[3] <= lon_hi and i != j:
                pairs.add((i, j) if i < j else (j, i))
    return pairs


def _near_pairs(probes: list[tuple[int, _Point]], reachers: list[tuple[int, _Point]],
                km: float) -> set[tuple[int, int]]:
    """Pairs of positions (i < j) with a probe of one within ``km`` of a reacher of the other
    (and a few more: a box around the reacher)."""
    grid: dict[tuple[int, int], list[tuple[int, _Point]]] = defaultdict(list)
    for i, point in probes:
        grid[_cell(point)].append((i, point))
    pairs: set[tuple[int, int]] = set()
    for j, reacher in reachers:
        box = _around(reacher, km)
        cells = _cells_of(box)
        found = probes if cells is None else (hit for cell in cells for hit in grid.get(cell, ()))
        for i, point in found:
            if i != j and _inside(point, box):
                pairs.add((i, j) if i < j else (j, i))
    return pairs


def _around(point: _Point, km: float) -> _Box:
    """A box holding every point within ``km`` of ``point`` as _km measures it."""
    lat, lon = point
    dlat = km * _SLACK / _KM_PER_DEGREE
    # _km takes the cosine at the pair's mean latitude, to a tenth of a degree: at most
    # this far from the equator for a point in reach
    scale = math.cos(math.radians(min(90.0, abs(lat) + dlat + 0.1)))
    dlon = dlat / scale if scale > 1e-6 else 360.0
    return (lat - dlat, lon - dlon, lat + dlat, lon + dlon)


def _cell(point: _Point) -> tuple[int, int]:
    """The grid cell of a point."""
    return (math.floor(point[0] / CELL_DEGREES), math.floor(point[1] / CELL_DEGREES))


def _cells_of(box: _Box) -> list[tuple[int, int]] | None:
    """The grid cells a box covers, or None when they are too many."""
    low, high = _cell((box[0], box[1])), _cell((box[2], box[3]))
    if (high[0] - low[0] + 1) * (high[1] - low[1] + 1) > _MAX_CELLS:
        return None
    return [(r, c) for r in range(low[0], high[0] + 1) for c in range(low[1], high[1] + 1)]


def _inside(point: _Point, box: _Box) -> bool:
    """Whether a point lies in a box (bounds included)."""
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


# Words of a need about land or premises, whatever the lexicon made of the rest of its text
# (« 600 m² à l'Aéroparc », « un local plus grand dans la Vallée des Usines »).
_PREMISES = re.compile(
    r"\b(?:\d[\d\s.]*\s*(?:m²|m2|ha)\b|hectares?|locaux|(?:un|le|du|notre|nouveau) local|"
    r"bâtiments?|batiments?|terrains?|friches?|parcelles?|"
    r"(?:un|des|les|le) lots? (?:sur|dans|viabilis\w*|de \d[\d\s.]*\s*(?:m²|m2|ha|hectares?))|"
    r"lots? (?:disponibles?|libres?)|(?:nous|s['’]) ?(?:installer|implanter)|halles?)\b",
    re.IGNORECASE)


# What comes before a commune that is where the staff go, not where they live
_TOWARD = re.compile(
    r"(?:jusqu['’]\s*(?:à|a|au|aux|en)|\bvers|→|->|>|\brejoindre|\baller\s+(?:à|a|au)|"
    r"\bdestination\s+d[eu]|\bdessert|\bdesservir|\bzones?\s+(?:de|d['’]|du)|"
    r"\bZ[AI]\s+(?:de|d['’]|du)|\bsite\s+(?:de|d['’]|du)|\bparc\s+(?:de|d['’]|du))"
    r"\s*(?:la\s+|le\s+|les\s+|l['’]\s*)?$", re.IGNORECASE)
# A commune this close to the firm's is the firm's own place (its station, its zone)
LOCAL_KM = 3.0


# Words that point at one site (a zone, a brownfield, a platform, an empty building, a lot
# being sold), and words of a search anywhere (« n'importe où », « pas de site précis »)
_DESIGNATED = re.compile(
    r"\bz[ai]c?e?\s+(?:de|du|des|d['’])|\bzones?\s+(?:d['’]\s*activit|industriel|artisanal|"
    r"portuaire|logistique|de|du|des|à\s+côté|a\s+cote)|\bparcs?\s+d['’]\s*activit|"
    r"\bfriches?\b|\banci[e]nn?e?s?\s+(?:site|usine|b[aâ]timent|base|halle|hangar|entrep|"
    r"carri|caserne|gare|papeterie|forge|filature|tannerie|laiterie|abattoir)|\bex-|"
    r"\bplate-?formes?\s+(?:de|du|chimique|logistique|multimodale|portuaire)|"
    r"\btechnop[oô]le|\bp[oô]le\s+(?:d['’]|industriel)|\bbase\s+(?:a[ée]rienne|\d)|"
    r"\b(?:b[aâ]timents?|hangars?|halles?|locaux|usine)\s+(?:vides?|vacants?|d[ée]saffect|"
    r"rouill|abandonn|inoccup)|\blotissement|\bextension\s+de\s+la\s+zone|"
    r"\btranches?\b|\b(?:lots|parcelles|terrains)\s+(?:de|du|en\s+cours|"
    r"derri[eè]re|[àa]\s+c[ôo]t[ée])|\bquai\b|\bport\s+(?:de|du)|"
    r"\b(?:l['’]\s*|la\s+|cette\s+)(?:nouvelle\s+|future\s+|prochaine\s+)?extension\b|"
    r"\b\w*parcs?\b(?!\s+(?:de\s+)?(?:machines|v[ée]hicules|camions|[àa]))|\bcoop\b|"
    r"\bvieil(?:le)?s?\s+(?:usine|b[aâ]timent|site|halle)",
    re.IGNORECASE)
# ...or a site by its proper name (« le site de la Digue », « l'ex Michelin », « la zone Grand
# Saint-Charles »): a capital after the word of a site
# (acronyms in capitals only: « pa » is an SMS « pas »)
_DESIGNATED_NAME = re.compile(
    r"\b(?:ZA|ZI|ZAC|ZAE|ZIP|PA|BA)\b|"
    r"\b(?:[Ss]ite|[Zz]one|[Ff]riche|[Uu]sine|[Ee]x|[Aa]ncien(?:ne)?s?|[Pp]arc|[Pp]lateforme)"
    r"\s+(?:(?:de\s+la|de\s+l['’]|du|des|de|d['’])\s*)?[A-ZÉÈ]")
_ANYWHERE = re.compile(
    r"n['’]\s*importe\s+o[uù]|peu\s+importe|pas\s+de\s+(?:site|zone|lieu)\s+(?:pr[ée]cis|"
    r"identifi)|toute\s+proposition|ouverts?\s+[àa]\s+tout", re.IGNORECASE)


def speaks_of_premises(text: str) -> bool:
    """Whether a text speaks of land or premises (a surface, a plot, a building)."""
    return _PREMISES.search(text) is not None


def _covered(a: Places, b: Places) -> bool:
    """Whether every end of ``a`` is near an end of ``b`` (ORIGIN_KM) or on the way between
    two of them (AXIS_KM: Valdahon is on the Besançon – Morteau axis)."""
    ys, box = b.ends, b.box
    assert box is not None
    for x in a.ends:
        # an end far outside the other's box is near none of its ends nor of their ways:
        # said at once (there are many pairs on a big territory)
        if not (box[0] <= x[0] <= box[2] and box[1] <= x[1] <= box[3]):
            return False
        if any(_km(x, y) <= ORIGIN_KM for y in ys):
            continue
        if not any(_off_axis(x, ys[i], ys[j]) <= AXIS_KM
                   for i in range(len(ys)) for j in range(i + 1, len(ys))):
            return False
    return True


def _origins(p: Places) -> tuple[tuple[float, float], ...]:
    """The communes a need names as where its staff come from: not named as where they go
    (``toward``), nor the firm's own place (within LOCAL_KM)."""
    if p.home is None:
        return ()
    return tuple(x for x in p.points
                 if x not in p.toward and _km(x, p.home) > LOCAL_KM)


def _same_origins(a: Places, b: Places) -> bool:
    """Whether two shuttle needs may come from one place: an origin of one near an origin of
    the other (ORIGIN_KM) or on its way farther out than its site (AXIS_KM), or each coming
    from the other's site; true when either does not say where its staff come from."""
    ours, theirs = a.origins, b.origins
    if not ours or not theirs:
        return True
    if any(_km(x, y) <= ORIGIN_KM for x in ours for y in theirs):
        return True
    for xs, p, ys in ((ours, b, theirs), (theirs, a, ours)):
        assert p.home is not None
        if any(_km(x, p.home) > ORIGIN_KM and _off_axis(x, y, p.home) <= AXIS_KM
               for x in xs for y in ys):
            return True
    assert a.home is not None and b.home is not None
    return (any(_km(x, b.home) <= LOCAL_KM for x in ours)
            and any(_km(y, a.home) <= LOCAL_KM for y in theirs))


def _reached(x: tuple[float, float], b: Places) -> bool:
    """Whether ``x`` is near an end of ``b`` (ORIGIN_KM) or on the way between two of them."""
    ys = b.ends
    if any(_km(x, y) <= ORIGIN_KM for y in ys):
        return True
    return any(_off_axis(x, ys[i], ys[j]) <= AXIS_KM
               for i in range(len(ys)) for j in range(i + 1, len(ys)))


def _on_way(x: tuple[float, float], b: Places) -> bool:
    """Whether ``x`` lies on the way between two ends of ``b`` (ON_WAY_KM)."""
    ys = b.ends
    return any(_off_axis(x, ys[i], ys[j]) <= ON_WAY_KM
               for i in range(len(ys)) for j in range(i + 1, len(ys)))


def _off_axis(x: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance in km from ``x`` to the segment between ``a`` and ``b`` (flat projection)."""
    scale = _COS[min(900, abs(round((a[0] + b[0]) * 5)))]
    ax, ay = a[1] * scale, a[0]
    bx, by = b[1] * scale, b[0]
    px, py = x[1] * scale, x[0]
    dx, dy = bx - ax, by - ay
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length))
    return _KM_PER_DEGREE * math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _with_home(p: Places) -> Places:
    """The places of a need with its firm's commune among them."""
    return Places(points=(*p.points, p.home), names=p.names) if p.home else p


def _nearest(candidates: tuple[Commune, ...] | list[Commune], home: tuple[float, float] | None,
             radius: float) -> Commune | None:
    """The candidate nearest the firm within ``radius`` km (any, by population, without it)."""
    located = [c for c in candidates if c.lat is not None and c.lon is not None]
    if not located:
        return None
    if home is None:
        return located[0]
    best = min(located, key=lambda c: _km(home, (c.lat, c.lon)))  # type: ignore[arg-type]
    return best if _km(home, (best.lat, best.lon)) <= radius else None  # type: ignore[arg-type]


def home_of(commune: str | None, insee: str | None = None) -> tuple[float, float] | None:
    """(lat, lon) of a firm's commune, by INSEE code or else by name (most populous)."""
    geo = default_geography()
    found: Commune | None = geo.by_insee(insee) if insee else None
    if found is None and commune:
        named = geo.named(commune)
        found = named[0] if named else None
    if found is None or found.lat is None or found.lon is None:
        return None
    return (found.lat, found.lon)


def read_places(text: str, home: tuple[float, float] | None) -> Places:
    """The places a need's text names (see the module docstring)."""
    geo = default_geography()
    words = [(m.group(), m.start()) for m in _WORD.finditer(text)]
    norm = [normalize_name(w) for w, _ in words]
    points: list[tuple[float, float]] = []
    toward: list[tuple[float, float]] = []
    names: set[str] = set()
    codes: set[str] = set()
    written: dict[str, str] = {}
    i = 0
    while i < len(words):
        word, start = words[i]
        # a capital at a sentence's start says nothing: « Pour », « Plus » may be communes
        initial = start == 0 or bool(_SENTENCE_END.search(text[max(0, start - 3):start]))
        capital = word[0].isupper() and (not initial or _rare(word))
        hit = (_commune_at(geo, words, norm, i, home, capital=capital)
               if geo.starts_a_name(norm[i].partition(" ")[0]) else None)
        if hit is not None:
            commune, size = hit
            points.append((commune.lat, commune.lon))  # type: ignore[arg-type]
            if _TOWARD.search(text, max(0, start - 40), start):
                toward.append(points[-1])
            codes.add(commune.insee)
            i += size
            continue
        if capital and _acronym(word):
            i += 1  # TER, SNCF, ICPE, ZA say what, not where (« la ZA de Legé »)
            continue
        if capital:
            run = _capital_run(text, words, i)
            span = " ".join(w for w, _ in words[i:i + run])
            prefixed = _nearest(list(geo.starting_with(span)), home, PREFIX_KM)
            if prefixed is None and run == 1:
                prefixed = _demonym(word, home)
            if prefixed is not None and normalize_name(span) not in _NOT_PLACES:
                points.append((prefixed.lat, prefixed.lon))  # type: ignore[arg-type]
                if _TOWARD.search(text, max(0, start - 40), start):
                    toward.append(points[-1])
                codes.add(prefixed.insee)
            elif not geo.named(span):
                # (a commune too far to be the firm's area: where goods go, where staff come
                # from far away, a market; no site of the territory)
                found = _site_names(words[i:i + run])
                names.update(found)
                surface = " ".join(w for w, _ in words[i:i + run])
                written.update((key, surface) for key in found if key not in written)
            i += run
            continue
        i += 1
    former: set[str] = set()
    for match in FORMER_BUILDING.finditer(text):
        # « l'ancienne laiterie », « l'ex-laiterie de la Noë »: one site by what it was (a
        # clue that joins, never one that parts: « l'ancienne usine de pneus » is also
        # « l'ancien site Bridgestone »)
        key = normalize_name(match.group("what") or match.group("activity"))
        former.add(key)
        written.setdefault(key, match.group(0).strip())
    fairs, fair_cities = fair_index().read(text)
    designated = (bool(_DESIGNATED.search(text) or _DESIGNATED_NAME.search(text))
                  and not _ANYWHERE.search(text))
    return Places(points=tuple(dict.fromkeys(points)), names=frozenset(names), home=home,
                  codes=frozenset(codes), former=frozenset(former), designated=designated,
                  toward=tuple(dict.fromkeys(toward)),
                  written=tuple(sorted(written.items())),
                  fairs=fairs, fair_cities=fair_cities)


def _commune_at(geo: Geography, words: list[tuple[str, int]], norm: list[str], i: int,
                home: tuple[float, float] | None, *,
                capital: bool) -> tuple[Commune, int] | None:
    """The longest commune name starting at word ``i`` (near the firm), with its length."""
    for size in range(min(_MAX_WINDOW, len(words) - i), 0, -1):
        span = [w for w, _ in words[i:i + size]]
        key = " ".join(norm[i:i + size])
        candidates = geo.named_words(norm[i:i + size])
        if not candidates:
            continue
        if key in _NOT_PLACES or (key.isdigit()):
            return None
        if not capital:
            # in lower case only a rare name is a place: « vire », « charge » are words
            if size == 1 and zipf(key) > MAX_LOWER_ZIPF:
                return None
            if size > 1 and not span[-1][0].isupper() and all(
                    zipf(n) > MAX_LOWER_ZIPF for n in norm[i:i + size]):
                continue
        found = _nearest(candidates, home, NEAR_KM)
        if found is not None and capital and home is not None and _km(
                home, (found.lat, found.lon)) > PREFIX_KM:  # type: ignore[arg-type]
            # « Montereau » from La Brosse-Montceaux is Montereau-Fault-Yonne (5 km), not the
            # Montereau of the Loiret (60 km): a longer name nearby wins over a far namesake
            longer = _nearest(list(geo.starting_with(" ".join(span))), home, PREFIX_KM)
            found = longer or found
        if found is not None:
            return found, size
    return None


_DEMONYM = re.compile(r"(?:ais|ois|aise|oise)$")


def _demonym(word: str, home: tuple[float, float] | None) -> Commune | None:
    """The town an area's adjective is made of (« le Choletais », « Montbardois »)."""
    stem = _DEMONYM.sub("", word)
    if stem == word or len(stem) < 4:
        return None
    return _nearest(list(default_geography().named(stem)), home, PREFIX_KM)


def _rare(word: str) -> bool:
    """Whether a word is rare in general French, elisions aside (« Technoland », not
    « L'ancien » nor « Pourrait-on »)."""
    parts = [part for part in normalize_name(word).split() if len(part) > 1]
    return bool(parts) and all(zipf(part) <= MAX_NAME_ZIPF for part in parts)


def _acronym(word: str) -> bool:
    """Whether a word is written in capitals (TER, SNCF, ZA) or holds a digit (A36, RN12)."""
    return (word.isupper() and len(word) > 1) or any(ch.isdigit() for ch in word)


def _joined(text: str, left: tuple[str, int], right: tuple[str, int]) -> bool:
    """Whether two words follow each other in one name (a space, no punctuation between)."""
    return not text[left[1] + len(left[0]):right[1]].strip()


def _capital_run(text: str, words: list[tuple[str, int]], i: int) -> int:
    """How many words from ``i`` make one capitalised name (« Grand Sud Logistique »)."""
    j = i + 1
    while j < len(words) and _joined(text, words[j - 1], words[j]):
        word = words[j][0]
        if word[0].isupper() and not _acronym(word):
            j += 1
        elif (word.lower() in _CONNECTORS and j + 1 < len(words)
              and words[j + 1][0][0].isupper() and _joined(text, words[j], words[j + 1])):
            j += 2
        else:
            break
    return j - i


def _site_names(run: list[tuple[str, int]]) -> set[str]:
    """Folded site names of a capitalised run that is no commune (rare words, the whole)."""
    words = [w for w, _ in run]
    folded = [normalize_name(w) for w in words]
    rare = [f for w, f in zip(words, folded, strict=True)
            if f and f not in _CONNECTORS and f not in _NOT_PLACES and _rare(w)]
    whole = " ".join(f for f in folded if f not in _CONNECTORS)
    if len(words) > 1 and whole not in _NOT_PLACES:
        # several capitalised words make a name even of common words (Grand Sud Logistique)
        return {*rare, whole}
    return {*rare, whole} if rare else set()
