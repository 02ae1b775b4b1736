"""Greek and Cyrillic to Latin, and accented Latin to plain ASCII, for DROP's name standardization.

The specification asks to "transliterate supported Greek and Cyrillic characters" and "fold supported Latin
characters to plain ASCII where possible"; it names no library, so the tables are ours (ISO 9 / ELOT 743 in
their common romanized, diacritic-free form, the way passports spell "Иван" as "ivan"). Every other script
(CJK, Arabic, Hebrew, ...) is kept as it is. Input is expected lowercased.
"""

from __future__ import annotations

import unicodedata

CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "iu", "я": "ia",
    # Ukrainian, Belarusian, Serbian, Macedonian, Bulgarian letters beyond Russian's
    "є": "ie", "і": "i", "ї": "i", "ґ": "g", "ў": "u", "ђ": "dj", "ј": "j", "љ": "lj", "њ": "nj", "ћ": "c",
    "џ": "dz", "ѓ": "g", "ќ": "k", "ѕ": "dz",
}

GREEK = {
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i", "κ": "k",
    "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t",
    "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
}

# Latin letters that do not decompose into a base letter and marks.
LATIN_SPECIAL = {
    "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i", "ħ": "h",
    "ŧ": "t", "ŋ": "n", "ĸ": "k", "ŀ": "l", "ſ": "s", "ƒ": "f", "ȷ": "j",
}


def _strip_marks(char: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))


def transliterate(text: str) -> str:
    """Each character: Cyrillic and Greek through the tables (accents dropped first), Latin folded to ASCII,
    anything else kept."""
    # Greek accents first (ό is ο), then the digraph ου, which ELOT 743 writes "ou".
    text = "".join(_strip_marks(c) if unicodedata.name(c, "").startswith("GREEK") else c for c in text)
    text = text.replace("ου", "ou")
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        name = unicodedata.name(char, "")
        if name.startswith("CYRILLIC"):
            base = unicodedata.normalize("NFD", char)[0]  # й and ё decompose; their base is in the table
            out.append(CYRILLIC.get(char, CYRILLIC.get(base, char)))
        elif name.startswith("GREEK"):
            base = _strip_marks(char)
            out.append(GREEK.get(base, base))
        elif name.startswith("LATIN"):
            folded = LATIN_SPECIAL.get(char)
            if folded is None:
                stripped = _strip_marks(char)
                folded = LATIN_SPECIAL.get(stripped, stripped)
            out.append(folded)
        else:
            out.append(char)
    return "".join(out)
