"""The sentences the engine expects to hear, as the corpus of its language model (see lm).

The business's own words come from the session (the services in the tools' schemas); the rest is how
callers talk to a receptionist: hours on any day, free times, bookings with a day, time and name, asking
for a person, emergencies, messages and goodbyes. Everyday sentences about other things are mixed in so
that speech the engine should not act on is recognised as what it is.

Templates use `{slot}` for a word list and `[a|b|]` for alternatives (an empty one makes it optional).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator, Sequence

__all__ = ["CONTEXTS", "FIRST_NAMES", "LAST_NAMES", "WEEKDAYS", "corpus", "everyday_words"]

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FIRST_NAMES = [
    "alex",
    "sam",
    "maria",
    "john",
    "james",
    "mary",
    "david",
    "sarah",
    "michael",
    "emma",
    "daniel",
    "anna",
    "peter",
    "laura",
    "robert",
    "linda",
    "thomas",
    "susan",
    "chris",
    "karen",
    "paul",
    "lisa",
    "mark",
    "nancy",
    "kevin",
    "julia",
    "brian",
    "helen",
    "jason",
    "amy",
    "eric",
    "rachel",
]
LAST_NAMES = [
    "morgan",
    "smith",
    "johnson",
    "brown",
    "garcia",
    "miller",
    "davis",
    "wilson",
    "taylor",
    "anderson",
    "thomas",
    "moore",
    "martin",
    "lee",
    "walker",
    "hall",
    "young",
    "king",
    "wright",
    "lopez",
    "hill",
    "green",
    "adams",
    "baker",
    "nelson",
    "carter",
    "mitchell",
    "turner",
    "parker",
]
HOURS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
MINUTES = ["", "", "thirty", "fifteen", "forty five", "o'clock"]
DAYPARTS = ["", "", "in the morning", "in the afternoon", "a m", "p m"]

_TEMPLATES = [
    # hours
    "[what are|what're] your [opening|] hours {day}",
    "[are you|is the office] open {day}",
    "[when|what time] do you [open|close] {day}",
    "how late are you open {day}",
    "[hi|hello|] [can you tell me|i'd like to know|] your hours {day} [please|]",
    "[hi|hello] what are your hours",
    # availability
    "do you have [any|anything|something] [free|available|open] [for a {service}|] {day}",
    "[is there|are there] [a free slot|any free times|any openings] for a {service} {day}",
    "what times [are free|do you have] {day} [for a {service}|]",
    "when can i come in for a {service}",
    # booking
    "[i'd like to|i want to|can i|could i] [book|schedule] a {service} [{day}|] [at {time}|]",
    "[i'd like to|i want to|can i] make an appointment [for a {service}|] [{day}|] [at {time}|]",
    "[hi|hello|yes] [i need|i'd like] a {service} [{day}|] [at {time}|] [please|]",
    "can i book [an appointment|a {service}] [{day}|] [at {time}|] my name is {name}",
    "[book|put] me in for a {service} {day} at {time} [please|]",
    "my name is {name}",
    "[it's|this is|i'm] {name}",
    "[the|] name is {name}",
    "[at|how about] {time} [please|]",
    "[on|] {weekday} [at {time}|] [please|]",
    "[a|the] {service} [please|]",
    "[yes|yeah|sure|okay] [please|that's right|that works|sounds good|]",
    "no [thanks|thank you|]",
    "[no|] [that doesn't work|that's not right] [for me|]",
    # a person
    "[can|could|may] i [speak|talk] to [a person|someone|a human|a real person|somebody] [please|]",
    "[i'd like to|i want to] [speak|talk] to [a person|someone|the receptionist] [please|]",
    "i [want|need|would like] to [speak|talk] to [a person|someone|a human|a real person|somebody]",
    "[please|] [put me through|connect me] to [a person|someone|a human]",
    "[can i|i'd like to] talk to a real person",
    "[can i|could i|i'd like to] speak to a person please",
    "can i talk to someone please",
    # emergency
    "i have [terrible|severe|] chest pain",
    "this is an emergency",
    "[help|] [i have|i've got|i'm having] [severe|terrible|bad|] chest pain",
    "my [husband|wife|son|daughter|mother|father] [can't breathe|is not breathing|is unconscious|passed out]",
    "[i'm|he's|she's] bleeding [a lot|heavily|badly]",
    "this is an emergency",
    "i think [i'm|he's|she's] having a heart attack",
    # message
    "can i leave a message [for the doctor|for {first}|]",
    "[please|can you] take a message [for the doctor|for {first}|]",
    "[please|can you] tell [the doctor|{first}] [that|] i [called|will be late|need to reschedule]",
    "i'd like to leave a message [please|]",
    "[please|] ask [the doctor|{first}] to call me back",
    # goodbye
    "[thanks|thank you] goodbye",
    "[thanks|thank you|okay thanks|great thanks|perfect thank you] [bye|goodbye|bye bye|]",
    "[that's all|that's everything|nothing else] [thank you|thanks] [goodbye|bye|]",
    "[goodbye|bye|bye bye|see you]",
    "[no|] [that's it|that's all] [for today|] [thanks|]",
]

# Everyday speech the engine should not act on (it asks the caller to say it again).
_OTHER = [
    "the weather is lovely this morning",
    "my cat likes to sleep on the sofa",
    "i went to the beach with my family last summer",
    "the train was late again today",
    "we are painting the kitchen blue",
    "did you watch the game last night",
    "the children are playing in the garden",
    "i lost my keys somewhere in the house",
    "the coffee here is very good",
    "my brother plays the guitar in a band",
    "it is raining and the road is wet",
    "she bought a new car last week",
    "the music was too loud at the party",
    "we need more milk and bread from the shop",
    "he reads the newspaper every morning",
    "the dog is barking at the neighbors",
    "i like to cook pasta with tomatoes",
    "the movie was long but very funny",
    "our flight leaves from the airport at night",
    "the flowers in the park look beautiful",
    "can you recommend a good restaurant",
    "how much does a new phone cost",
    "i forgot my password for the computer",
    "the purple elephant sings jazz in the moonlight",
    "where is the nearest bank",
    "what is the capital of france",
    "um",
    "uh",
    "hmm",
    "sorry what",
    "hello",
    "hello is anyone there",
]

# When the agent has just asked for something, the answer is most likely that: each context adds its answers
# to the corpus (the caller may still say anything else).
_ANSWERS = {
    "day": [
        "[on|] {weekday} [please|]",
        "[next|this] {weekday} [please|]",
        "[tomorrow|today] [please|]",
        "[on|] {weekday} at {time} [please|]",
    ],
    "time": ["[at|] {time} [please|]", "how about {time}", "{time} [works|would be great|please]"],
    "slot": [
        "[yes|yeah|sure|okay] [please|that works|that's great|]",
        "[at|] {time} [please|]",
        "no [thanks|] [another day|]",
    ],
    "name": ["my name is {name}", "[it's|this is|i'm] {name}", "{name}", "[the|] name is {name}"],
    "service": ["[a|the] {service} [please|]", "[i'd like|i need] a {service} [please|]"],
}
CONTEXTS = (None, *_ANSWERS)
"""What the recogniser can be tuned to: nothing in particular, or the answer to a question just asked."""

_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def _days(rng: random.Random) -> str:
    weekday = rng.choice(WEEKDAYS)
    return rng.choice(
        ["today", "tomorrow", f"on {weekday}", f"next {weekday}", f"this {weekday}", weekday, "", "for today"]
    )


def _time(rng: random.Random) -> str:
    return (
        " ".join(part for part in (rng.choice(HOURS), rng.choice(MINUTES), rng.choice(DAYPARTS)) if part)
        if rng.random() > 0.1
        else "noon"
    )


def _fill(template: str, rng: random.Random, services: Sequence[str]) -> str:
    text = _CHOICE.sub(lambda match: rng.choice(match.group(1).split("|")), template)
    slots = {
        "day": lambda: _days(rng),
        "weekday": lambda: rng.choice(WEEKDAYS),
        "service": lambda: rng.choice(services),
        "time": lambda: _time(rng),
        "name": lambda: f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        "first": lambda: rng.choice(FIRST_NAMES),
    }
    return _SLOT.sub(lambda match: slots[match.group(1)](), text)


# Little words any request may hold: never evidence of another topic.
_FUNCTION_WORDS = (  # noqa: SIM905 - a list of forty words reads better as one string
    "and of we was did where up us he she they by from with but our has very too much more does here am "
    "sorry after again off last new long every near his hmm uh um"
).split()


@functools.cache
def everyday_words() -> frozenset[str]:
    """Words only the everyday sentences use: speech heard as several of them was about something else."""
    rng = random.Random(0)
    templates = _TEMPLATES + [template for answers in _ANSWERS.values() for template in answers]
    domain = {
        word for template in templates for _ in range(60) for word in _fill(template, rng, ["x"]).split()
    }
    domain |= set(FIRST_NAMES + LAST_NAMES + WEEKDAYS + HOURS + _FUNCTION_WORDS)
    everyday = {word for sentence in _OTHER for word in sentence.split()}
    return frozenset(everyday - domain)


def corpus(
    services: Sequence[str], expecting: str | None = None, *, per_template: int = 120, seed: int = 11
) -> Iterator[list[str]]:
    """Sentences (word lists) for the language model: the templates filled at random, plus everyday talk,
    plus (when `expecting` names a context) many answers of that kind."""
    rng = random.Random(seed)
    spoken_services = [service.replace("_", " ") for service in services] or ["appointment"]
    templates = _ANSWERS.get(expecting or "", [])
    for template in templates:
        for _ in range(per_template * len(_TEMPLATES) // len(templates)):
            yield _fill(template, rng, spoken_services).split()
    for template in _TEMPLATES:
        for _ in range(per_template):
            yield _fill(template, rng, spoken_services).split()
    for sentence in _OTHER:
        for _ in range(4):
            yield sentence.split()
    for words in (FIRST_NAMES, LAST_NAMES, WEEKDAYS, HOURS):
        for word in words:
            yield [word]
