"""A small trigram language model, written as ARPA text for pocketsphinx, from a corpus of sentences.

Why our own: pocketsphinx's general English model (en-us.lm.bin) heard the demo's telephone lines as noise
("what are your opening hours today" came out as "no the gotten a day") and took seconds per line, while a
model of the few hundred words a receptionist hears recognises them almost word for word, fast. The corpus
(see vocabulary) also holds everyday sentences, so speech about something else is heard as something else
rather than forced onto a booking.

Smoothing is absolute discounting with back-off (Ney's D = 0.5), which is enough for a corpus generated
from templates.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

__all__ = ["arpa_from_sentences", "dictionary_for"]

DISCOUNT = 0.5
UNIGRAM_FLOOR = 0.5  # add-half smoothing of word counts, so no word is ever impossible
BOS, EOS = "<s>", "</s>"
# Word-initial fricatives whose energy lies mostly above the telephone band's 4 kHz: over G.711 the acoustic
# model (trained on 16 kHz speech) often does not hear them ("saturday" came out as "have today"), so each
# such word also gets a pronunciation without its first sound.
NARROWBAND_WEAK_ONSETS = frozenset({"S", "TH", "F", "Z"})


def _log10(value: float) -> float:
    return math.log10(max(value, 1e-99))


def arpa_from_sentences(sentences: Iterable[Sequence[str]], order: int = 3) -> str:
    """An ARPA back-off model of `order` over `sentences` (each a list of lower-case words)."""
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order + 1)]
    for words in sentences:
        tokens = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for start in range(len(tokens) - n + 1):
                counts[n][tuple(tokens[start : start + n])] += 1
    vocabulary = sorted(word for (word,) in counts[1])
    total = sum(counts[1].values()) + UNIGRAM_FLOOR * len(vocabulary)
    probability: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    probability[1] = {(w,): (counts[1][(w,)] + UNIGRAM_FLOOR) / total for w in vocabulary}
    probability[1][(BOS,)] = 0.0  # never predicted; ARPA still lists it
    backoff: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    for n in range(2, order + 1):
        history_total: Counter[tuple[str, ...]] = Counter()
        followers: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for gram, count in counts[n].items():
            history_total[gram[:-1]] += count
            followers[gram[:-1]].append(gram)
        for history, grams in followers.items():
            seen_mass = 0.0
            lower_mass = 0.0
            for gram in grams:
                p = (counts[n][gram] - DISCOUNT) / history_total[history]
                probability[n][gram] = p
                seen_mass += p
                lower_mass += _lower_probability(probability, backoff, gram[1:])
            left = max(1.0 - seen_mass, 1e-9)
            backoff[n - 1][history] = left / max(1.0 - lower_mass, 1e-9)
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(probability[n])}" for n in range(1, order + 1)]
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        for gram, p in sorted(probability[n].items()):
            logp = -99.0 if gram == (BOS,) else _log10(p)
            entry = f"{logp:.4f}\t{' '.join(gram)}"
            if n < order and gram in backoff[n]:
                entry += f"\t{_log10(backoff[n][gram]):.4f}"
            elif n < order:
                entry += "\t0.0000"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _lower_probability(
    probability: list[dict[tuple[str, ...], float]],
    backoff: list[dict[tuple[str, ...], float]],
    gram: tuple[str, ...],
) -> float:
    """P(gram[-1] | gram[:-1]) from the lower orders already computed (back-off chain)."""
    if len(gram) == 1:
        return probability[1].get(gram, 0.0)
    if gram in probability[len(gram)]:
        return probability[len(gram)][gram]
    weight = backoff[len(gram) - 1].get(gram[:-1], 1.0)
    return weight * _lower_probability(probability, backoff, gram[1:])


def dictionary_for(words: Iterable[str], full_dictionary: str) -> tuple[str, list[str]]:
    """The pronunciation lines (with alternates) of `words` from a CMU dictionary file's text.

    Returns the dictionary text and the words it has no pronunciation for (the corpus must not use them).
    """
    wanted = set(words) - {BOS, EOS}
    found: dict[str, int] = {}
    lines = []
    variants = []
    for line in full_dictionary.splitlines():
        head, _, phones = line.partition(" ")
        word = head.split("(", 1)[0]
        if word in wanted:
            lines.append(line)
            found[word] = found.get(word, 0) + 1
            first, _, rest = phones.strip().partition(" ")
            if first in NARROWBAND_WEAK_ONSETS and rest:
                variants.append((word, rest))
    for word, rest in variants:
        found[word] += 1
        lines.append(f"{word}({found[word]}) {rest}")
    return "\n".join(lines) + "\n", sorted(wanted - set(found))
