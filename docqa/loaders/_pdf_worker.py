"""The PDF worker process: pypdf runs here, under an address-space and CPU limit.

Run as a script by ``docqa.loaders.pdf`` (``python _pdf_worker.py MEMORY_MB``), never imported
by docqa itself: a fresh interpreter that imports only the standard library and pypdf starts
fast and has no model or tokenizer mapped into the address space the limit applies to.

Protocol, over stdin/stdout, every frame a 4-byte big-endian length and a payload.
Request: a JSON header ``{"size", "password", "start_page", "end_page", "cpu_s", "outline"}``,
then ``size`` raw bytes of PDF; pages ``start_page`` up to ``end_page`` (exclusive; all when
absent or null) are read. The same bytes asked for again are not opened again (a PDF is first
asked for its page count and outline, then for its pages). Replies are JSON objects:
``{"t": "ready"}`` once at start-up, then one per event so that the parent keeps every page
read before a hang or a crash: ``{"t": "open", "pages", "encrypted"}``; when ``outline`` was
asked for, ``{"t": "outline", "items": [[title, page_index, depth], ...]}`` (empty when the
PDF has no outline or it cannot be read); per page ``{"t": "page", "n", "text"}`` or ``{"t":
"page", "n", "error"}``; then ``{"t": "done"}``. Or, when the file cannot be opened, ``{"t":
"fail", "kind", "message"}``.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder is sys.path[0], and its html.py, text.py… would shadow the
# standard library's modules for pypdf. Drop it before anything else is imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, BinaryIO  # noqa: E402

_LENGTH = struct.Struct(">I")

#: Outline (bookmark) items sent at most, and the longest title kept: a hostile outline costs
#: a bounded frame.
MAX_OUTLINE_ITEMS = 5000
MAX_TITLE_CHARS = 300


def read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None at end of input (the parent has gone: time to exit)."""
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def send(out: BinaryIO, message: dict[str, Any]) -> None:
    payload = json.dumps(message).encode("utf-8")
    out.write(_LENGTH.pack(len(payload)) + payload)
    out.flush()


def one_line(exc: BaseException) -> str:
    """The exception as one short line: name and first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:200].rstrip(". ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def extract_page(reader: Any, index: int) -> str:
    """Text of page ``index`` (0-based); a separate function so tests can make a page misbehave."""
    return reader.pages[index].extract_text() or ""


def extract_outline(reader: Any) -> list[list[Any]]:
    """The outline as ``[title, page_index, depth]`` items in reading order, at most
    ``MAX_OUTLINE_ITEMS``; items that point at no page are left out. A separate function so
    tests can make it misbehave."""
    items: list[list[Any]] = []
    # pypdf bounds the outline's depth and entries and stops on cycles; this walk bounds
    # what is sent.
    stack: list[tuple[list[Any], int, int]] = [(list(reader.outline), 0, 0)]
    while stack and len(items) < MAX_OUTLINE_ITEMS:
        nodes, position, depth = stack.pop()
        if position >= len(nodes):
            continue
        stack.append((nodes, position + 1, depth))
        node = nodes[position]
        if isinstance(node, list):
            stack.append((node, 0, depth + 1))
            continue
        try:
            page = reader.get_destination_page_number(node)
            title = str(node.title or "")
        except Exception:  # a broken destination costs its own item only
            continue
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if title and page is not None and page >= 0:
            items.append([title, int(page), depth])
    return items


def open_reader(data: bytes, password: str | None, out: BinaryIO) -> Any:
    """A decrypted ``PdfReader``, or None after sending a ``fail`` frame that says why."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
        # An empty user password is common (permissions-only encryption): open silently.
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            if not password:
                send(out, {"t": "fail", "kind": "password", "message": ""})
                return None
            if reader.decrypt(password) == PasswordType.NOT_DECRYPTED:
                send(out, {"t": "fail", "kind": "wrong_password", "message": ""})
                return None
        return reader
    except DependencyError as exc:
        send(out, {"t": "fail", "kind": "dependency", "message": one_line(exc)})
    except MemoryError:
        send(out, {"t": "fail", "kind": "memory", "message": ""})
    except Exception as exc:  # pypdf raises far more than PyPdfError on damaged files
        send(out, {"t": "fail", "kind": "damaged", "message": one_line(exc)})
    return None


#: The last PDF opened: ``(bytes, password, reader)``, reused when the same is asked again.
_last: tuple[bytes, Any, Any] | None = None


def handle(data: bytes, header: dict[str, Any], out: BinaryIO) -> None:
    """Extract the pages of one PDF, sending a frame per page as it goes."""
    global _last
    password = header.get("password")
    if _last is not None and _last[0] == data and _last[1] == password:
        reader = _last[2]
    else:
        _last = None  # the earlier file's memory goes before this one is opened
        reader = open_reader(data, password, out)
        if reader is None:
            return
        _last = (data, password, reader)
    try:
        count = len(reader.pages)
    except MemoryError:
        send(out, {"t": "fail", "kind": "memory", "message": ""})
        return
    except Exception as exc:
        send(out, {"t": "fail", "kind": "damaged", "message": one_line(exc)})
        return
    send(out, {"t": "open", "pages": count, "encrypted": bool(reader.is_encrypted)})
    if header.get("outline"):
        try:
            items = extract_outline(reader)
        except Exception:  # MemoryError included: an outline that cannot be read is skipped
            items = []
        send(out, {"t": "outline", "items": items})
    end = header.get("end_page")
    for index in range(int(header.get("start_page", 0)), count if end is None else min(count, end)):
        try:
            send(out, {"t": "page", "n": index + 1, "text": extract_page(reader, index)})
        except MemoryError:
            send(out, {"t": "page", "n": index + 1, "error": "memory"})
        except Exception as exc:  # one bad page costs that page only
            send(out, {"t": "page", "n": index + 1, "error": one_line(exc)})
    send(out, {"t": "done"})


def _limit_cpu(seconds: float) -> None:
    # A backstop for when the parent cannot kill us (it died): the kernel stops a runaway parse.
    # RLIMIT_CPU counts the whole process's CPU time, so the limit is set from what is used now.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def exit_with_parent() -> None:
    """Exit when the parent process dies, even in the middle of a page.

    A parent killed with kill -9 closes our stdin, but a long page would keep us parsing
    until the CPU limit, an orphan. A thread polls the parent's id: that is process-wide,
    unlike Linux's PR_SET_PDEATHSIG, which fires when the parent *thread* that started us
    ends (docqa may start this worker from any thread of a long-lived program). A parent
    that died before this line leaves us stdin at its end: `main` returns at once.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """Serve requests until stdin closes."""
    exit_with_parent()  # first: its thread's stack is mapped before the memory limit
    memory_mb = int(argv[1]) if len(argv) > 1 else 0
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if memory_mb > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        # macOS refuses RLIMIT_AS; there the deadline alone bounds the run.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    import pypdf  # noqa: F401  (imported once, before the first request's clock starts)

    send(out, {"t": "ready"})  # the parent starts its deadlines only from here
    stdin = sys.stdin.buffer
    while True:
        raw = read_exact(stdin, _LENGTH.size)
        if raw is None:
            return 0
        header_bytes = read_exact(stdin, _LENGTH.unpack(raw)[0])
        if header_bytes is None:
            return 0
        header = json.loads(header_bytes)
        data = read_exact(stdin, int(header["size"]))
        if data is None:
            return 0
        if header.get("cpu_s"):
            _limit_cpu(float(header["cpu_s"]))
        handle(data, header, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
