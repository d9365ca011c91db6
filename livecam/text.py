"""How livecam words what it prints: counts with the right plural, messages on one line."""

from __future__ import annotations

from collections.abc import Sequence


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 frame', '2 frames', '0 frames'; ``many`` where adding an s is wrong ('1 try', '2 tries')."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def one_line(message: str) -> str:
    """A message with its line breaks and runs of spaces made single spaces."""
    return " ".join(message.split())


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st ..."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def listed(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
