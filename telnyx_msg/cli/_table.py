"""Bulk input files as people have them: BOMs, delimiters, encodings, ragged and blank rows.

Rows are numbered the way a spreadsheet shows them: the header is row 1, the first data row is
row 2, and a quoted cell that spans several lines is still one row. Every message and the
RESULTS file use these numbers (a decoding error also gives the physical file line when it
differs).

Decisions, for files the contract leaves open:

- The header is matched case-insensitively after trimming spaces (``From`` is ``from``).
- A byte order mark decides the encoding whatever ``--encoding`` says, since such a file cannot
  be anything else: a UTF-8 BOM ("CSV UTF-8") means UTF-8, a UTF-16 BOM (Excel's "Unicode
  Text") UTF-16, a UTF-32 BOM UTF-32. ``--encoding utf-16`` (or ``utf-32``) without a BOM is
  refused: the byte order is unknown (``utf-16-le`` and ``utf-16-be`` name it).
- The delimiter is the one of ``,``, ``;`` and tab that splits the header into the most known
  column names.
- A short row is read as a spreadsheet shows it: the missing trailing cells are empty. A long row
  is rejected unless its extra cells are empty (an unquoted delimiter inside a text would
  otherwise shift every later cell into the wrong column).
- A row whose cells are all empty is skipped (it is not a message) and counted in the summary.
- A column with an empty header is ignored while its cells are empty; a value under it rejects
  the row.
- Quoting is read strictly, and a multi-line cell holding a line that reads like a row of the
  file (its columns, a phone number under ``to``) refuses the file: one stray quote would
  otherwise make the rows after it the text of one message.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from attrs import frozen

__all__ = ["BOOL_COLUMNS", "COLUMNS", "Table", "TableError", "fingerprint", "open_table"]

#: Column name -> send keyword argument.
COLUMNS: dict[str, str] = {
    "from": "from_",
    "to": "to",
    "text": "text",
    "media_urls": "media_urls",
    "messaging_profile_id": "messaging_profile_id",
    "subject": "subject",
    "type": "type",
    "webhook_url": "webhook_url",
    "webhook_failover_url": "webhook_failover_url",
    "use_profile_webhooks": "use_profile_webhooks",
    "auto_detect": "auto_detect",
    "encoding": "encoding",
}
BOOL_COLUMNS = frozenset({"use_profile_webhooks", "auto_detect"})
_ALIASES = {"from_": "from"}
_DELIMITERS = (",", ";", "\t")
#: Files people pass for a CSV by mistake, by their first bytes.
_NOT_TEXT = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
)
_UTF8_BOM = codecs.BOM_UTF8
# UTF-32 first: the UTF-32 LE BOM begins with the UTF-16 LE one.
_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "utf-32-le",
    codecs.BOM_UTF32_BE: "utf-32-be",
    codecs.BOM_UTF16_LE: "utf-16-le",
    codecs.BOM_UTF16_BE: "utf-16-be",
}


class TableError(Exception):
    """The file cannot be read as a bulk table (the message names the row and the fix)."""


class _DecodeError(Exception):
    def __init__(self, line: int, problem: str, codec: str) -> None:
        super().__init__(line, problem, codec)
        self.line, self.problem, self.codec = line, problem, codec

    @classmethod
    def of(cls, line: int, exc: UnicodeError, codec: str) -> _DecodeError:
        if not isinstance(exc, UnicodeDecodeError):  # a codec's own complaint
            return cls(line, str(exc), codec)
        bad = exc.object[exc.start : max(exc.end, exc.start + 1)]
        shown = " ".join(f"0x{b:02x}" for b in bad[:4])
        what = "byte {} is" if len(bad) == 1 else "bytes {} are"
        return cls(line, f"{what.format(shown)} not valid {codec}", codec)


@frozen
class Table:
    """A checked bulk file: how to decode and split it, and what each column means."""

    path: Path
    codec: str
    skip: int  # BOM bytes before the header
    delimiter: str
    #: Per column: its known name, ``""`` for an empty header (a value there rejects the row),
    #: or None for an unknown column ignored with ``--ignore-unknown-columns``.
    columns: tuple[str | None, ...]
    ignored: tuple[str, ...]  # unknown column names ignored with --ignore-unknown-columns
    #: The file's (size, mtime, inode, device) when checked: every read stops at a change.
    stamp: tuple[int, ...] | None = None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row number, cells)`` for every data row, in file order (blank rows included)."""
        lines = _PhysicalLines(self.path, self.codec, self.skip, self.stamp)
        # strict: a quote left open at the end of the file is an error, not one cell holding
        # every row after it (sent as one message, to the first row's recipient).
        reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
        row = 0
        try:
            for cells in reader:
                row += 1
                if row > 1:
                    self._check_swallowed(row, cells)
                    yield row, cells
        except _DecodeError as exc:
            where = f"row {row + 1}" + (f" (file line {exc.line})" if exc.line != row + 1 else "")
            hint = (
                "; pass --encoding (spreadsheets on Windows often save cp1252)"
                if exc.codec == "utf-8"
                else "; check --encoding"
            )
            raise TableError(f"{self.path}: {where}: {exc.problem}{hint}") from None
        except csv.Error as exc:
            raise TableError(f"{self.path}: row {row + 1}: {_csv_problem(exc)}") from None
        except _LineTooLong:
            raise TableError(f"{self.path}: row {row + 1}: {_TOO_LONG}") from None
        except _Changed:
            # Read on, a rewritten file sends some rows twice, skips others and stitches
            # rows together across the read chunks.
            raise TableError(
                f"{self.path} changed while this run read it (near row {row + 1}); stopped. "
                "Leave FILE as it is until the run ends: to resume, restore it as it was; "
                "to send the new file, start a new run with another --out"
            ) from None

    def _check_swallowed(self, row: int, cells: list[str]) -> None:
        """Refuse a quoted cell that runs over lines reading like rows of this file.

        A stray quote opens a cell that the next quote in the file closes: the rows between
        become text of one message. A line of a multi-line cell that splits into this file's
        columns with a phone number under ``to`` is such a row, not text anyone writes.
        """
        if "to" not in self.columns:
            return
        at, width = self.columns.index("to"), len(self.columns)
        # A short row leaves trailing columns out (allowed): it is told from text holding a
        # delimiter and a number by its sender cell too, a number or the row's own sender.
        sender = next((self.columns.index(n) for n in _SENDERS if n in self.columns), None)
        for position, cell in enumerate(cells):
            if "\n" not in cell and "\r" not in cell:
                continue
            for line in cell.splitlines()[1:]:
                parts = next(csv.reader([line], delimiter=self.delimiter), [])
                if not (
                    at < len(parts) <= width and _LOOKS_LIKE_NUMBER.fullmatch(parts[at].strip())
                ):
                    continue
                if len(parts) == width or (
                    # A short row as a CSV export writes it: no blank around its cells (text
                    # such as "MyShop, +18005550100" or "1234567, 7654321" has one).
                    sender is not None
                    and sender < len(parts)
                    and parts[at] == parts[at].strip()
                    and parts[sender] == parts[sender].strip()
                    and (
                        _LOOKS_LIKE_NUMBER.fullmatch(value := parts[sender].strip())
                        or (sender < len(cells) and value == cells[sender].strip() != "")
                    )
                ):
                    name = self.columns[position] or f"column {position + 1}"
                    raise TableError(
                        f"{self.path}: row {row}: the {name} cell runs over several lines, and "
                        f"one of them reads like a row of this file ({line.strip()[:60]!r}): "
                        "a quote opened in this row closes only in a later row. Close it, or "
                        'write "" for a quote inside a quoted cell'
                    )

    def cell(self, cells: list[str], name: str) -> str:
        """The raw value of column ``name`` in ``cells`` (empty if absent)."""
        if name in self.columns:
            position = self.columns.index(name)
            if position < len(cells):
                return cells[position].strip()
        return ""

    def request(self, cells: list[str]) -> dict[str, Any] | None:
        """Send keyword arguments of one row; None for a blank row; ValueError for a bad cell."""
        if not any(cell.strip() for cell in cells):
            return None
        width = len(self.columns)
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            raise ValueError(
                f"row has {len(cells)} cells but the header has {width} "
                "(an unquoted delimiter inside a text?)"
            )
        request: dict[str, Any] = {}
        for position, (name, raw) in enumerate(zip(self.columns, cells, strict=False)):
            value = raw.strip()
            if not value:
                continue
            if name is None:
                continue
            if not name:
                raise ValueError(f"a value in column {position + 1}, which has no header")
            if (c0 := _C0.search(value)) is not None:
                what = (
                    "half of a UTF-16 pair, which no text carries alone"
                    if c0[0] >= "\ud800"
                    else "a control character (a NUL or other byte no text has)"
                )
                raise ValueError(
                    f"{name}: holds U+{ord(c0[0]):04X}, {what}: is the file's encoding right?"
                )
            if (c1 := _C1.search(value)) is not None:
                # What latin-1 makes of cp1252's curly quotes, dashes and euro sign: invisible
                # in a message, never meant.
                raise ValueError(
                    f"{name}: holds the control character U+{ord(c1[0]):04X}: the file is "
                    "probably cp1252 (Excel on Windows), pass --encoding cp1252"
                )
            if name == "media_urls":
                request["media_urls"] = [u.strip() for u in value.split("|") if u.strip()]
            elif name in BOOL_COLUMNS:
                if value.lower() not in ("true", "false"):
                    raise ValueError(f"{name}: {value!r} must be true or false")
                request[name] = value.lower() == "true"
            else:
                request[COLUMNS[name]] = value
        return request

    def _first_line(self) -> str:
        return next(iter(_PhysicalLines(self.path, self.codec, self.skip)), "")


class _PhysicalLines:
    """Decoded lines of the file (endings kept, as csv wants), counting physical lines.

    The bytes are split into lines first (on whole code units for UTF-16 and UTF-32) and
    decoded line by line, so a decoding error names its exact line.
    """

    def __init__(
        self, path: Path, codec: str, skip: int, stamp: tuple[int, ...] | None = None
    ) -> None:
        self.path, self.codec, self.skip, self.stamp = path, codec, skip, stamp
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as handle:
            handle.seek(self.skip)
            decode = codecs.getdecoder(self.codec)
            wide = _WIDE_EOL.get(self.codec)
            read = _watched(handle, self.path, self.stamp)
            for raw in _byte_lines(read) if wide is None else _wide_lines(read, wide):
                self.line += 1
                try:
                    text = decode(raw)[0]
                except UnicodeError as exc:
                    raise _DecodeError.of(self.line, exc, self.codec) from None
                yield text


class _Changed(Exception):
    pass


def stamp(path: Path) -> tuple[int, ...]:
    """What tells a rewritten or replaced file: its size, mtime, inode and device."""
    info = path.stat()
    return (info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)


def _watched(handle: BinaryIO, path: Path, expected: tuple[int, ...] | None) -> Callable[[], bytes]:
    """Read the next chunk of ``handle``; raise :class:`_Changed` once ``path`` is no longer
    the file ``expected`` describes (checked after each read, so no changed byte is used)."""

    def read() -> bytes:
        chunk = handle.read(_CHUNK)
        if expected is not None:
            info = os.fstat(handle.fileno())
            if (info.st_size, info.st_mtime_ns) != expected[:2] or stamp(path) != expected:
                raise _Changed
        return chunk

    return read


_LOOKS_LIKE_NUMBER = re.compile(r"\+?[1-9]\d{5,14}")
_SENDERS = ("from", "messaging_profile_id")
_C1 = re.compile("[\x80-\x9f]")
# Control characters but tab and line ends, and lone surrogates (which an --encoding such as
# utf-7 can decode, and no UTF-8 request can carry).
_C0 = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _csv_problem(exc: csv.Error) -> str:
    """The csv module's complaint, said in terms of the file."""
    text = str(exc)
    if "unexpected end of data" in text:
        return (
            "a quoted cell that starts here is never closed (a stray quote?): the rest of the "
            "file would be read as that one cell. Close it, or remove the quote"
        )
    if "expected after" in text:
        return (
            f"{text}: a quote closes a cell but more text follows in it. Put the whole cell "
            'in quotes and write "" for each quote inside it'
        )
    if "field larger than field limit" in text:
        return (
            "a cell longer than 131,072 characters (a quote opened and never closed swallows "
            "the rows after it): check the quotes in this row"
        )
    if "line contains NUL" in text:
        return "a NUL character: is this a CSV file? (save it as CSV from your spreadsheet)"
    return text


_EOL = re.compile(rb"\r\n?|\n")
_CHUNK = 1 << 16
#: No CSV row has a physical line this long (csv's own limit is 128 K characters per cell).
_MAX_LINE = 1 << 22
_TOO_LONG = "a line longer than 4 MiB: is this a CSV file?"


class _LineTooLong(Exception):
    pass


def _byte_lines(read: Callable[[], bytes]) -> Iterator[bytes]:
    """Lines ending in ``\\n``, ``\\r\\n`` or a lone ``\\r``, read in bounded chunks.

    A lone carriage return ends a line in files saved as "CSV (Macintosh)" by older Excel for
    Mac; split on ``\\n`` only, such a file would be one line. No byte of a multi-byte
    character is ``\\r`` or ``\\n`` in the ASCII-compatible encodings this path reads.
    """
    buffer = bytearray()
    for chunk in iter(read, b""):
        # What is buffered holds no line end, except perhaps a final \r: scan from there.
        scan = max(len(buffer) - 1, 0)
        buffer += chunk
        start = 0
        for match in _EOL.finditer(buffer, scan):
            if match.end() == len(buffer) and buffer.endswith(b"\r"):
                break  # the \r may be the first half of a \r\n split across chunks
            yield bytes(buffer[start : match.end()])
            start = match.end()
        del buffer[:start]
        if len(buffer) > _MAX_LINE:  # memory stays bounded whatever the file is
            raise _LineTooLong
    if buffer:
        yield bytes(buffer)


class _WideEol(NamedTuple):
    pattern: re.Pattern[bytes]
    cr: bytes


def _wide_eol(codec: str) -> _WideEol:
    """A line of ``codec`` (UTF-16 or UTF-32 of known byte order) up to its end, matched from
    a code unit's start over whole units: a byte 0x0a inside a character ends no line."""
    unit = len("\n".encode(codec))
    cr, lf = "\r".encode(codec), "\n".encode(codec)
    ends = b"|".join(re.escape(end) for end in (cr + lf, cr, lf))
    return _WideEol(re.compile(b"(?s)(?:" + b"." * unit + b")*?(?:" + ends + b")"), cr)


_WIDE_EOL = {codec: _wide_eol(codec) for codec in _WIDE_BOMS.values()}


def _wide_lines(read: Callable[[], bytes], eol: _WideEol) -> Iterator[bytes]:
    """:func:`_byte_lines` for UTF-16 and UTF-32 (``read`` at the start of a code unit)."""
    unit = len(eol.cr)
    buffer = bytearray()
    scan = 0  # the first code unit of the buffer not yet known to end no line
    for chunk in iter(read, b""):
        buffer += chunk
        start = 0
        while (match := eol.pattern.match(buffer, scan)) is not None:
            if len(buffer) - match.end() < unit and match[0].endswith(eol.cr):
                break  # the CR may be the first half of a CR LF split across chunks
            yield bytes(buffer[start : match.end()])
            start = scan = match.end()
        del buffer[:start]
        # The last whole unit may be a CR whose LF comes next: looked at again.
        scan = max(len(buffer) // unit - 1, 0) * unit
        if len(buffer) > _MAX_LINE:  # memory stays bounded whatever the file is
            raise _LineTooLong
    if buffer:
        yield bytes(buffer)


def _normalise(names: list[str]) -> list[str]:
    out = []
    for name in names:
        key = name.strip().lower()
        out.append(_ALIASES.get(key, key))
    return out


def open_table(
    path: Path, encoding: str = "utf-8", *, ignore_unknown_columns: bool = False
) -> Table:
    """Check the header of ``path`` before anything is sent; raise :class:`TableError`."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        info = None
    # hex, base64, zlib, rot13, ... are codecs too, but not of text: they failed later with
    # a traceback. (_is_text_encoding is how Python's own str.encode tells them apart.)
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise TableError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
    codec = info.name
    if str(path) == "-" or (path.exists() and not path.is_file()):
        # A pipe or stdin can be read once; a run reads its FILE to check it, to send, and to
        # resume after a crash (by row number, against the file's recorded SHA-256).
        raise TableError(
            f"{path} is not a regular file: bulk reads FILE more than once (to check it, to send "
            "and to resume), so save the input to a file first"
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror or exc}") from None
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            # "pass --encoding" would send the user chasing the wrong fix.
            raise TableError(
                f"{path} is {what}, not a CSV file: save it as CSV first (in Excel: File > "
                'Save As > "CSV UTF-8")'
            )
    skip = 0
    for bom, marked in ((_UTF8_BOM, "utf-8"), *_WIDE_BOMS.items()):
        if head.startswith(bom):
            skip, codec = len(bom), marked
            break
    if codec == "utf-8-sig":
        codec = "utf-8"
    if not skip and not codec.startswith(("utf-16", "utf-32")) and b"\x00" in head[:2]:
        # "unknown column(s) 'f\x00r\x00o\x00m'" would not say what is wrong.
        wide = "utf-32" if b"\x00\x00" in (head[:2], head[2:4]) else "utf-16"
        order = "le" if head[:1] != b"\x00" else "be"
        raise TableError(
            f"{path} holds NUL bytes: it looks like {wide.upper()} without a byte order mark; "
            f"pass --encoding {wide}-{order}"
        )
    if codec in ("utf-16", "utf-32"):  # no BOM: Python's codec would fail on the first read
        raise TableError(
            f"{path} does not start with a byte order mark, which --encoding {codec} needs to "
            f"tell the byte order: pass --encoding {codec}-le (what Windows writes) or "
            f"--encoding {codec}-be"
        )
    probe = Table(path, codec, skip, ",", (), ())
    try:
        first = probe._first_line()
    except _DecodeError as exc:
        raise TableError(f"{path}: row 1 (the header): {exc.problem}; pass --encoding") from None
    except _LineTooLong:
        raise TableError(f"{path}: row 1 (the header): {_TOO_LONG}") from None
    if not first.strip():
        raise TableError(f"{path}: the first line must be a header row (from,to,text,...)")
    if first.lstrip().startswith(("{", "[")):
        # Else "unknown column(s) '{"from":...'": RESULTS may be JSON Lines, the input is not.
        raise TableError(
            f"{path} looks like JSON, not CSV: bulk reads a CSV file whose first line is a "
            "header row of send fields (from,to,text,...)"
        )
    hint = first.rstrip("\r\n").strip(" ")
    if re.fullmatch(r'"?sep=(.)"?\1*', hint, re.IGNORECASE):
        # Excel's delimiter hint (``sep=<TAB>`` too, whose tab strip() would drop; quoted or
        # followed by empty cells once a spreadsheet saved it back): not a header. Reading it
        # as one would shift every row number.
        raise TableError(
            f"{path}: the first line {hint!r} is Excel's delimiter hint, not a header "
            "row: delete that line (the delimiter is detected from the header)"
        )
    try:
        delimiter = max(_DELIMITERS, key=lambda d: _score(first, d))
        names = _normalise(next(csv.reader([first], delimiter=delimiter)))
    except csv.Error as exc:  # (Python 3.10 refuses a NUL in a line)
        raise TableError(f"{path}: row 1 (the header): {_csv_problem(exc)}") from None
    known = sorted(COLUMNS)
    unknown = [n for n in names if n and n not in COLUMNS]
    if unknown and not ignore_unknown_columns:
        raise TableError(
            f"{path}: unknown column(s) {', '.join(repr(n) for n in unknown)}; known columns: "
            f"{', '.join(known)} (pass --ignore-unknown-columns to send without them)"
        )
    seen: set[str] = set()
    for name in names:
        if name in COLUMNS and name in seen:
            raise TableError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    if "to" not in seen:
        raise TableError(f"{path}: no 'to' column (header: {first.strip()!r})")
    if not seen & {"from", "messaging_profile_id"}:
        raise TableError(f"{path}: needs a 'from' or a 'messaging_profile_id' column")
    if not seen & {"text", "media_urls"}:
        raise TableError(f"{path}: needs a 'text' or a 'media_urls' column")
    columns = tuple(n if n in COLUMNS or not n else None for n in names)
    return Table(path, codec, skip, delimiter, columns, tuple(unknown), stamp(path))


def _score(line: str, delimiter: str) -> tuple[int, int]:
    cells = _normalise(next(csv.reader([line], delimiter=delimiter), []))
    return sum(1 for c in cells if c in COLUMNS), len(cells)


def fingerprint(path: Path) -> str:
    """``size:sha256`` of the file: a resumed run must read the very rows it started with."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            size += len(chunk)
            digest.update(chunk)
    return f"{size}:{digest.hexdigest()}"
