"""Radar speed on one territory's open needs (issue 18 item 5): 500 to 10,000 needs.

Needs are generated from templates written in many voices (SMS, formal, long and rambling),
about ~45 objects of the lexicon, plus needs about no known object (scored on their words)
and a firm's own matters (never pooled); each firm sits in a real commune (Doubs, Territoire
de Belfort) and shuttles and sites name real towns, so that the places are read
(bot/services/radar_places.py). Each size is timed twice with the knowledge base:
cold (analysis cache emptied) and warm (the same needs again, as a second /radar would).
Every figure is also given against a baseline measured in the same run: the cold analysis of
one need (median over 200 needs), and with its growth exponent from the previous size.

Run: ``python3 bench/bench_radar.py`` (``--sizes 500,2000`` to choose). Budgets: 2,000 needs
≤ 1 s, 10,000 ≤ 10 s (issue 18).

``--apart`` also times each size warm with the animator's separations as the bot stores them
(« Retirer » one need of each group: a set of two with each other member; « Écarter » the
three biggest groups: one set each), against the same needs without separations in the same
run (the baseline of that column); « rows » is what the database holds for them.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from bot.services.radar import NeedItem, _base, clear_cache, find_groups
from knowledge.geography import default_geography
from knowledge.retrieval import KnowledgeBase

SUBJECTS = [
    ("recrutement", "soudeurs TIG"), ("recrutement", "un chaudronnier"),
    ("competences", "la soudure semi-auto"), ("recrutement", "des caristes CACES 3"),
    ("recrutement", "un conducteur de chariot"), ("competences", "le CACES 5"),
    ("recrutement", "un tourneur fraiseur sur commande numérique"),
    ("competences", "l'usinage CNC"), ("recrutement", "un régleur décolleteur"),
    ("competences", "le décolletage sur tour à cames"),
    ("recrutement", "un électrotechnicien de maintenance"),
    ("recrutement", "un électricien du bâtiment"), ("recrutement", "des conducteurs de ligne"),
    ("recrutement", "un chauffeur poids lourd"), ("recrutement", "un frigoriste"),
    ("recrutement", "des désosseurs"), ("recrutement", "des couturières en confection"),
    ("recrutement", "un technicien qualité"), ("recrutement", "un dessinateur projeteur"),
    ("recrutement", "des magasiniers"), ("recrutement", "un mouliste"),
    ("mutualisation", "une cabine de peinture"), ("mutualisation", "du thermolaquage"),
    ("innovation", "un robot de soudure"), ("mutualisation", "une presse CLT"),
    ("mutualisation", "une découpe laser"), ("innovation", "une imprimante 3D"),
    ("mutualisation", "un traitement de surface"), ("mutualisation", "un séchoir à bois"),
    ("mutualisation", "un banc d'essai"), ("mutualisation", "une chambre froide"),
    ("foncier", "un terrain de 2 hectares"), ("foncier", "une friche"),
    ("foncier", "un atelier de 800 m² sur la zone de {town}"),
    ("foncier", "la friche de l'ancienne usine de {town}"),
    ("mobilite", "une navette depuis la gare"), ("mobilite", "du covoiturage"),
    ("mobilite", "une navette depuis {town} pour nos équipes"),
    ("mobilite", "un minibus entre {town} et {town2} aux heures de poste"),
    ("transition", "la chaleur fatale"), ("transition", "les palettes usagées"),
    ("transition", "la sciure et les copeaux"), ("transition", "les solvants usagés"),
    ("transition", "la méthanisation"), ("export", "un salon en Allemagne"),
    ("export", "une mission au Canada"), ("mutualisation", "des achats groupés"),
    ("recrutement", "le logement des apprentis"), ("recrutement", "une crèche interentreprises"),
    ("mutualisation", "un restaurant interentreprises"),
]
VOICES = [
    "on cherche {s}, urgent",
    "Bonjour, nous recherchons {s} depuis plusieurs mois, sans succès.",
    "besoin de {s} pr l'atelier svp",
    "Madame, Monsieur, notre entreprise de {k} salariés souhaiterait travailler {s} avec "
    "d'autres entreprises du secteur. Le carnet de commandes est plein. Cordialement.",
    "{s} ?? on est plusieurs dans la zone, on pourrait s'organiser ensemble",
    "Suite à la réunion du club, je reviens vers vous : {s}, c'est notre priorité pour "
    "l'an prochain, et on n'est sûrement pas les seuls dans la vallée.",
    "slt, tjs rien pour {s}, qqn a une idée ?",
    "Nous voudrions mutualiser {s} avec des voisins.",
]
BARE = [  # no object of the lexicon: scored on words
    "cherche un vitrier pour la vitrine", "recrute un graphiste à mi-temps",
    "besoin d'un juriste pour nos contrats", "qui connaît un bon traducteur technique ?",
    "on cherche un ébavureur pour les pièces moulées", "recrutement d'un acheteur industriel",
]
OWN = [
    "financer notre nouvelle machine, la banque hésite",
    "permis de construire bloqué pour notre extension",
    "je pars à la retraite, comment transmettre l'entreprise ?",
    "trésorerie tendue, un client ne paie plus",
]


def _communes() -> list[tuple[str, str]]:
    """(name, INSEE) of 80 communes of the Doubs and the Territoire de Belfort, spread over
    the INSEE order: the firms' communes, and the towns their shuttles and sites name."""
    found = sorted((c for c in default_geography().communes()
                    if c.departement in {"25", "90"} and c.lat is not None),
                   key=lambda c: c.insee)
    return [(c.name, c.insee) for c in found[:: max(1, len(found) // 80)][:80]]


def generate(n: int, seed: int = 7) -> list[NeedItem]:
    """n open needs of one territory, from the templates, in many voices."""
    rng = random.Random(seed)
    communes = _communes()
    items: list[NeedItem] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.08:
            theme, text = "autre", rng.choice(BARE) + f" ({rng.randint(1, 99)})"
        elif roll < 0.14:
            theme, text = "financement", rng.choice(OWN)
        else:
            theme, subject = rng.choice(SUBJECTS)
            subject = subject.format(town=rng.choice(communes)[0],
                                     town2=rng.choice(communes)[0])
            text = rng.choice(VOICES).format(s=subject, k=rng.randint(5, 300))
        name, insee = rng.choice(communes)
        items.append(NeedItem(need_id=i + 1, reference=f"TI-{i + 1}", theme=theme, text=text,
                              firm=f"Entreprise {rng.randint(1, n)}", commune=name,
                              commune_insee=insee))
    return items


def _timed(items: list[NeedItem], kb: KnowledgeBase,
           apart: list[tuple[int, ...]] | None = None) -> tuple[float, int]:
    """Seconds to group the needs, and the number of groups."""
    start = time.perf_counter()
    groups = find_groups(items, kb=kb, apart=apart or ())
    return time.perf_counter() - start, len(groups)


def separations(items: list[NeedItem], kb: KnowledgeBase) -> list[tuple[int, ...]]:
    """What an animator might have set apart: one need out of each group, three groups aside."""
    groups = find_groups(items, kb=kb)
    sets: list[tuple[int, ...]] = [(g.need_ids[0], other) for g in groups
                                   for other in g.need_ids[1:]]
    return sets + [g.need_ids for g in groups[:3]]


def main() -> None:
    """Time the radar at each size, cold and warm, against the per-need baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,5000,10000")
    parser.add_argument("--apart", action="store_true",
                        help="also time the grouping with the animator's separations")
    args = parser.parse_args()
    kb = KnowledgeBase.load(None)
    # the process-wide tables (lexicon, word frequencies, the communes by name) are built
    # once per process, as in the bot, before any timing; "cold" empties the per-need caches
    find_groups(generate(100, seed=3), kb=kb)
    # baseline: the cold analysis of one need
    sample = generate(200, seed=1)
    clear_cache()
    per_need = []
    for item in sample:
        start = time.perf_counter()
        _base(item)
        per_need.append(time.perf_counter() - start)
    baseline = statistics.median(per_need)
    print(f"baseline: cold analysis of one need {baseline * 1e3:.3f} ms (median of 200)")
    print(f"{'needs':>6} {'cold s':>8} {'warm s':>8} {'groups':>6} {'cold/base':>10} "
          f"{'exp cold':>8} {'exp warm':>8}"
          + (f" {'rows apart':>10} {'warm apart s':>12} {'÷ warm':>7}" if args.apart else ""))
    previous: tuple[int, float, float] | None = None
    for n in (int(x) for x in args.sizes.split(",")):
        items = generate(n)
        clear_cache()
        cold, groups = _timed(items, kb)
        warm, _ = _timed(items, kb)
        exp_cold = exp_warm = float("nan")
        if previous is not None:
            pn, pc, pw = previous
            exp_cold = math.log(cold / pc) / math.log(n / pn)
            exp_warm = math.log(warm / pw) / math.log(n / pn)
        extra = ""
        if args.apart:
            apart = separations(items, kb)
            with_apart, _ = _timed(items, kb, apart)
            rows = sum(len(members) for members in apart)
            extra = f" {rows:>10} {with_apart:>12.3f} {with_apart / warm:>7.2f}"
        print(f"{n:>6} {cold:>8.3f} {warm:>8.3f} {groups:>6} {cold / baseline:>10.0f} "
              f"{exp_cold:>8.2f} {exp_warm:>8.2f}{extra}")
        previous = (n, cold, warm)


if __name__ == "__main__":
    main()
