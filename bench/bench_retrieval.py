"""Benchmark the knowledge-base search against two plain baselines (a script, not a test).

    python bench/bench_retrieval.py [--size 5000] [--repeat 1] [--json]

For three engines side by side — ours (``knowledge.retrieval``), a plain BM25 with ``bm25s``
(title + summary + body + keywords, French stop words and stemmer, no synonyms) and a plain
``rapidfuzz`` ranking (token_set_ratio of the question against title + aliases + keywords) —
it measures:

- accuracy on the evaluation set with the shipped cards: top-1, top-3, refusal of the
  out-of-scope questions (same definitions as ``relais kb eval``). The baselines have no
  notion of confidence: they get the refusal threshold on their top score that is best for
  them on this very set (an oracle, i.e. generous);
- latency per question (p50, p99, cold: caches cleared; CPU time of the thread, i.e. the
  cost on one core, and wall-clock time) and index memory, at the shipped
  size and with synthetic cards (variants of the real cards: ids suffixed, words shuffled
  and partly replaced, new made-up words) up to ``--size``. Titles and aliases get the
  variant number, so that names stay unique as ``relais kb check`` requires.

The process is pinned to one core when the platform allows it. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bm25s  # noqa: E402
import psutil  # noqa: E402
import snowballstemmer  # noqa: E402
from rapidfuzz import fuzz, process, utils  # noqa: E402

from knowledge.cards import Card, load_cards  # noqa: E402
from knowledge.kb_cli import EVAL_FILE, load_eval  # noqa: E402
from knowledge.retrieval import KnowledgeBase  # noqa: E402
from knowledge.text import fold  # noqa: E402

Ranker = Callable[[str], list[tuple[str, float]]]  # question -> [(card id, score)], best first


# -- synthetic cards ------------------------------------------------------------------------


def _perturb(text: str, rng: random.Random, vocabulary: Sequence[str], rate: float) -> str:
    """Shuffle a text's sentences and replace a share of its words."""
    sentences = [s for s in text.replace("\n", " ").split(". ") if s]
    rng.shuffle(sentences)
    out: list[str] = []
    for sentence in sentences:
        words = sentence.split()
        for i in range(len(words)):
            if rng.random() < rate:
                words[i] = rng.choice(vocabulary)
        out.append(" ".join(words))
    return ". ".join(out)


def synthetic_cards(cards: Sequence[Card], size: int, seed: int = 7) -> list[Card]:
    """``size`` cards derived from the real ones, with a vocabulary that keeps growing."""
    rng = random.Random(seed)
    real_words = sorted(
        {w for c in cards for w in (c.body + " " + c.summary).split() if w.isalpha()}
    )
    made_up = [
        f"{rng.choice('bcdfglmnprstv')}{rng.choice('aeiou')}{n:x}ique" for n in range(40_000)
    ]
    vocabulary = real_words + made_up
    out: list[Card] = []
    for i in range(size):
        base = cards[i % len(cards)]
        keywords = list(base.keywords)
        rng.shuffle(keywords)
        out.append(
            replace(
                base,
                id=f"{base.id}_v{i}",
                title=f"{_perturb(base.title, rng, vocabulary, 0.2)} {i}",
                aliases=tuple(f"{a} {i}" for a in base.aliases),
                summary=_perturb(base.summary, rng, vocabulary, 0.2),
                keywords=tuple(_perturb(k, rng, vocabulary, 0.3) for k in keywords),
                body=_perturb(base.body, rng, vocabulary, 0.25),
                successor=None,
                ends=None,
            )
        )
    return out


# -- engines ----------------------------------------------------------------------------------


def ours(cards: Sequence[Card]) -> tuple[Ranker, Callable[[str], bool], Callable[[], None]]:
    """Our engine: ranker, 'confident' decision, cache reset."""
    kb = KnowledgeBase.from_cards(cards)

    def rank(q: str) -> list[tuple[str, float]]:
        return [(h.card.id, h.score) for h in kb.ask(q).hits]

    def confident(q: str) -> bool:
        answer = kb.ask(q)
        return answer.confident and not answer.out_of_scope

    return rank, confident, kb.clear_caches


_STEMMER = snowballstemmer.stemmer("french")


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    """bm25s tokenisation, French stop words and stemmer, accents kept as the baseline."""
    tokens = bm25s.tokenize(
        texts, stopwords="fr", stemmer=_STEMMER.stemWords, return_ids=False, show_progress=False
    )
    return [list(t) for t in tokens]


def bm25_baseline(cards: Sequence[Card]) -> Ranker:
    """Plain BM25 over title + summary + body + keywords (no synonyms, no names)."""
    corpus = [f"{c.title}\n{c.summary}\n{c.body}\n{' '.join(c.keywords)}" for c in cards]
    retriever = bm25s.BM25()
    retriever.index(_bm25_tokens(corpus), show_progress=False)
    ids = [c.id for c in cards]
    k = min(5, len(cards))

    def rank(q: str) -> list[tuple[str, float]]:
        tokens = _bm25_tokens([q])
        if not tokens[0]:
            return []
        docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        return [(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    return rank


def fuzzy_baseline(cards: Sequence[Card]) -> Ranker:
    """Plain rapidfuzz: token_set_ratio of the question against title + aliases + keywords."""
    choices = [
        utils.default_process(fold(" ".join((c.title, *c.aliases, *c.keywords)))) for c in cards
    ]
    ids = [c.id for c in cards]

    def rank(q: str) -> list[tuple[str, float]]:
        query = utils.default_process(fold(q))
        found = process.extract(query, choices, scorer=fuzz.token_set_ratio, limit=5)
        return [(ids[i], s / 100.0) for _, s, i in found]

    return rank


# -- measures -------------------------------------------------------------------------------


@dataclass
class Accuracy:
    """Accuracy figures of one engine on the evaluation set."""

    top1: float
    top3: float
    refusal: float
    confident_rate: float
    threshold: float | None  # refusal threshold chosen for a baseline


def _accuracy_from(
    rank: Ranker,
    confident: Callable[[str], bool] | None,
    questions: list[dict[str, Any]],
    out_scope: list[dict[str, Any]],
) -> Accuracy:
    """Top-1/top-3, and refusal (own decision, or best threshold for a baseline)."""
    top1 = top3 = 0
    in_scores: list[float] = []
    for item in questions:
        ranked = [i for i, _ in rank(item["q"])]
        expected = set(item["expected"])
        top1 += bool(ranked) and ranked[0] in expected
        top3 += any(i in expected for i in ranked[:3])
        in_scores.append(rank(item["q"])[0][1] if ranked else 0.0)
    out_scores = [(rank(i["q"]) or [("", 0.0)])[0][1] for i in out_scope]
    n_in, n_out = len(questions), len(out_scope)
    if confident is not None:
        refusal = sum(not confident(i["q"]) for i in out_scope) / n_out
        conf_rate = sum(confident(i["q"]) for i in questions) / n_in
        return Accuracy(top1 / n_in, top3 / n_in, refusal, conf_rate, None)
    best = (-1.0, 0.0, 0.0, 0.0)
    for tau in [*sorted(set(in_scores + out_scores)), float("inf")]:
        refusal = sum(s < tau for s in out_scores) / n_out
        conf_rate = sum(s >= tau for s in in_scores) / n_in
        if (refusal + conf_rate) / 2 > best[0]:
            best = ((refusal + conf_rate) / 2, refusal, conf_rate, tau)
    return Accuracy(top1 / n_in, top3 / n_in, best[1], best[2], best[3])


def _percentiles(times: list[float]) -> tuple[float, float]:
    """Median and 99th percentile of a list of durations."""
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


def _latency(
    rank: Ranker, queries: Sequence[str], reset: Callable[[], None] | None, repeat: int
) -> dict[str, float]:
    """p50/p99 in milliseconds, each question asked cold: CPU time of the thread (what the
    engine costs on one core) and wall-clock time (which also counts other processes)."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeat):
        for q in queries:
            if reset is not None:
                reset()
            c0 = time.thread_time()
            t0 = time.perf_counter()
            rank(q)
            wall.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.thread_time() - c0) * 1000.0)
    p50, p99 = _percentiles(cpu)
    wall50, wall99 = _percentiles(wall)
    return {"p50_ms": p50, "p99_ms": p99, "wall_p50_ms": wall50, "wall_p99_ms": wall99}


def _build(engine: str, deck: Sequence[Card]) -> tuple[Ranker, Callable[[], None] | None]:
    """Build one engine over a deck: its ranker and its cache reset (ours only)."""
    if engine == "ours":
        rank, _confident, reset = ours(deck)
        return rank, reset
    if engine == "bm25s":
        return bm25_baseline(deck), None
    return fuzzy_baseline(deck), None


def _memory_child(engine: str, size: int, traced: bool) -> dict[str, float]:
    """In a fresh process: memory of the synthetic cards and of one engine's index (MB)."""
    cards = load_cards().cards
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    deck = synthetic_cards(cards, size) if size > len(cards) else list(cards)
    gc.collect()
    rss1 = psutil.Process().memory_info().rss
    if traced:
        tracemalloc.start()
    engine_object = _build(engine, deck)
    gc.collect()
    out = {"cards_rss_mb": (rss1 - rss0) / 1e6}
    if traced:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out |= {"traced_mb": current / 1e6, "traced_peak_mb": peak / 1e6}
    else:
        out["index_rss_mb"] = (psutil.Process().memory_info().rss - rss1) / 1e6
    del engine_object
    return out


def _memory(engine: str, size: int) -> dict[str, float]:
    """Run the memory measures in child processes (a clean heap for each engine)."""
    out: dict[str, float] = {}
    for traced in (False, True):
        args = [sys.executable, __file__, "--memory-child", engine, str(size)]
        if traced:
            args.append("--traced")
        done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
        out |= json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="synthetic knowledge-base size")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the questions")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("ENGINE", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        engine, size = args.memory_child
        print(json.dumps(_memory_child(engine, int(size), args.traced)))
        return 0
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        except OSError:
            pass

    card_set = load_cards()
    cards = card_set.cards
    questions, out_scope = load_eval(EVAL_FILE)
    queries = [q["q"] for q in questions] + [q["q"] for q in out_scope]

    # accuracy on the shipped cards
    our_rank, our_confident, _reset = ours(cards)
    accuracy = {
        "ours": _accuracy_from(our_rank, our_confident, questions, out_scope),
        "bm25s": _accuracy_from(bm25_baseline(cards), None, questions, out_scope),
        "rapidfuzz": _accuracy_from(fuzzy_baseline(cards), None, questions, out_scope),
    }
    rows: list[dict[str, Any]] = []
    for size in (len(cards), args.size):
        deck = cards if size == len(cards) else synthetic_cards(cards, size)
        for engine in ("ours", "bm25s", "rapidfuzz"):
            t0 = time.perf_counter()
            rank, reset = _build(engine, deck)
            build_s = time.perf_counter() - t0
            for q in queries[:20]:  # warm-up
                rank(q)
            latency = _latency(rank, queries, reset, args.repeat)
            a = accuracy[engine]
            rows.append(
                {
                    "engine": engine,
                    "cards": size,
                    "top1": a.top1,
                    "top3": a.top3,
                    "refusal": a.refusal,
                    "confident_rate": a.confident_rate,
                    "threshold": a.threshold,
                    **latency,
                    "build_s": build_s,
                    **_memory(engine, size),
                }
            )
            del rank, reset
            gc.collect()

    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"Jeu d'évaluation : {len(questions)} questions, {len(out_scope)} hors périmètre ; "
        f"précision mesurée sur les {len(cards)} fiches livrées.\n"
    )
    print(
        "| moteur | fiches | top-1 | top-3 | refus hors périmètre | réponses sûres | "
        "p50 CPU (ms) | p99 CPU (ms) | p99 mur (ms) | index (RSS, Mo) | "
        "index (tracemalloc, Mo) | fiches (RSS, Mo) | construction (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['cards']} | {r['top1']:.1%} | {r['top3']:.1%} | "
            f"{r['refusal']:.1%} | {r['confident_rate']:.1%} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['wall_p99_ms']:.2f} | {r['index_rss_mb']:.1f} | "
            f"{r['traced_mb']:.1f} | "
            f"{r['cards_rss_mb']:.1f} | {r['build_s']:.1f} |"
        )
    print(
        "\nLes références n'ont pas de notion de confiance : leur seuil de refus est choisi a "
        "posteriori sur ce même jeu (le plus favorable pour elles). Latence : chaque question "
        "posée à froid (caches vidés), temps CPU du fil d'exécution (coût sur un cœur) et temps "
        "réel (qui compte aussi les autres processus de la machine)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
