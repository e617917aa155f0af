"""A real English corpus for next-word prediction: the definitions of GCIDE, the Collaborative
International Dictionary of English (Webster's 1913 + WordNet), as Debian's `dict-gcide` installs it.

The file is dictd's format, gzip-readable: articles separated by blank lines, each opening with a
headword line (or lines) at column 0 (`Calorie \\Cal"o*rie\\, n. [F., fr. L. calor heat.] (Physics)`), then the
definitions indented, a blank line between senses. We keep the definition prose and strip the
markup (`strip_markup`):

- the headword, its pronunciation (`\\...\\` and `(k[.a]*l...)`), part of speech and usage labels;
- every bracketed group: etymologies `[L. calor heat]`, labels `[Obs.]`, source tags `[1913 Webster]`,
  `[WordNet 1.5 +PJC]`; accent codes inside words (`calorif[\\`e]re`, `[ae]`) become plain letters;
- `Syn:` and `Antonym:` lists, quotation attributions (`--Dickens.`), sense numbers, the braces of
  cross-references (`{Foot pound}` keeps its words), the prefixes `Note:` and `Usage:`.

A paragraph (one sense) is a definition; it is split into sentences at `.`, `?`, `!` followed by
a capital letter (an abbreviation such as "Mr. Fox" splits too: a small, honest imperfection).
Words are lower-case runs of letters, with inner apostrophes (`tokenize`).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataFormatError

__all__ = ["GCIDE_PATH", "corpus_path", "read_articles", "strip_markup", "tokenize", "sentences"]

GCIDE_PATH = Path("/usr/share/dictd/gcide.dict.dz")
INSTALL_HINT = "apt-get install -y dict-gcide"

_ACCENT = re.compile(r"\[([^\]\s\[]{1,6})\]")                     # [`e], [=a], [aum], [ae], [deg]
_GROUP = re.compile(r"\[[^\[\]]*\]")                               # innermost bracketed group
_PRONUNCIATION = re.compile(r"\([^()]*[*\"`][^()]*\)")             # (k[.a]*l[o^]r"...): marks of stress
_LABEL = re.compile(r"\((?:[A-Z][A-Za-z]*\.?(?:\s*(?:&|,|and|or)?\s*))+\)")  # (Zool.), (Bot. & Med.)
_SENSE = re.compile(r"(?m)^\s*(?:\d+\.|\([a-z]\))\s*|\s\([a-z]\)\s")  # "1. ", "(a) "
_ATTRIBUTION = re.compile(r"--\s?[A-Z][^\n]*")                     # --Dickens.  --Sir W. Scott.
_POS = re.compile(r"^[\s,;&]*(?:(?:[a-z]{1,5}\.|&|,)\s*)*")        # , n.   , v. t.   prop. n.   a. & adv.
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_DROPPED = ("Syn:", "Antonym:", "Antonyms:")
_PREFIXES = re.compile(r"^(?:Note|Usage|Specifically|Hence):\s*")
_SYMBOLS = {"eth": "th", "thorn": "th", "deg": " ", "root": " ", "sect": " ", "add": " ", "asl": " "}


def corpus_path(path: str | Path | None = None) -> Path:
    """The corpus file: `path`, else GCIDE_PATH; DataFormatError in one line naming the Debian
    package to install when it is absent."""
    path = Path(path) if path is not None else GCIDE_PATH
    if not path.is_file():
        raise DataFormatError(f"{path}: the GCIDE dictionary is not installed (next-word's corpus): "
                              f"{INSTALL_HINT}")
    return path


def _accent(match: re.Match) -> str:
    """An accent code as plain letters: [`e] -> e, [aum] (a umlaut) -> a, [ae] -> ae, [deg] -> space.
    A code of capitals or with a dot ([Obs.], [R.]) is a label: left for _GROUP to drop."""
    code = match.group(1)
    letters = re.sub(r"[^a-z]", "", code)
    if not letters or "." in code or code[0].isupper() or len(letters) < len(code) - 2:
        return match.group(0)
    if letters in _SYMBOLS:
        return _SYMBOLS[letters]
    if letters.endswith(("um", "mac", "cir", "dd")) and len(letters) > 2:
        return letters[0]                                         # a umlaut, i macron, ...
    return letters


def strip_markup(article: str) -> list[str]:
    """The definition prose of one dictd article (its headword line first), one string a sense
    (paragraph), markup removed as the module's docstring says. [] for an article with no
    headword line (the database's own 00-database-* entries)."""
    lines = article.split("\n")
    first = next((i for i, line in enumerate(lines) if line[:1] in (" ", "\t", "")), len(lines))
    head, body = " ".join(lines[:first]), "\n".join(lines[first:])   # the headword may take lines
    if "\\" not in head or head.startswith("00-"):
        return []
    head = head[head.rindex("\\") + 1:]                            # after the last pronunciation
    paragraphs = re.split(r"\n\s*\n", head + "\n" + body)
    kept = []
    for i, text in enumerate(paragraphs):
        text = text.strip()
        if not text or text.startswith(_DROPPED):
            continue
        text = _PRONUNCIATION.sub(" ", text)
        text = _ACCENT.sub(_accent, text)
        while True:                                                # nested groups, innermost first
            text, count = _GROUP.subn(" ", text)
            if not count:
                break
        text = _ATTRIBUTION.sub(" ", text)
        text = _LABEL.sub(" ", text)
        if i == 0:
            text = _POS.sub("", text)
        text = _PREFIXES.sub("", _SENSE.sub(" ", text).strip())
        text = " ".join(text.replace("{", "").replace("}", "").split())
        if text:
            kept.append(text)
    return kept


def tokenize(text: str) -> list[str]:
    """Lower-case words: runs of letters with inner apostrophes ("don't"); digits and marks dropped."""
    return _WORD.findall(text.lower())


def sentences(paragraph: str) -> list[list[str]]:
    """The non-empty sentences of one definition, each a list of words (`tokenize`)."""
    return [words for part in _SENTENCE_END.split(paragraph) if (words := tokenize(part))]


def read_articles(path: str | Path | None = None, max_tokens: int | None = None) -> Iterator[list[list[str]]]:
    """Each article of the corpus as its sentences (lists of words; `sentences` of each sense),
    in file order, read as a stream; stops after the article that reaches `max_tokens` words."""
    path = corpus_path(path)
    count = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            lines: list[str] = []
            for line in f:
                if line[:1] not in (" ", "\t", "\n", "") and lines and not lines[-1].strip():
                    article = [s for para in strip_markup("".join(lines).strip("\n")) for s in sentences(para)]
                    if article:
                        yield article
                        count += sum(map(len, article))
                        if max_tokens is not None and count >= max_tokens:
                            return
                    lines = []
                lines.append(line)
            article = [s for para in strip_markup("".join(lines).strip("\n")) for s in sentences(para)]
            if article:
                yield article
    except (OSError, EOFError) as e:
        raise DataFormatError(f"{path}: cannot read the gzip-compressed dictionary: {e}") from None
