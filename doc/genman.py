#!/usr/bin/env python3
"""Man pages of the ``hashpool-*`` methods, generated from their JSON schemas in ``doc/schemas``.

The pages have the sections and order of Core Lightning's own, which it generates from the same kind of schema:
NAME, SYNOPSIS, DESCRIPTION (with each parameter), RETURN VALUE, ERRORS, AUTHOR, SEE ALSO, RESOURCES, EXAMPLES.
Each is ``lightning-<method>.7``, the name ``lightning-cli help <method>`` looks for first.

    python3 doc/genman.py            write doc/man/lightning-<method>.7 for every schema
    python3 doc/genman.py --check    exit 1 when a page in doc/man is not what the schemas give
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent
SCHEMAS = DOC / "schemas"
MAN = DOC / "man"
SOURCE = "hashpool-cln"
FOOTER_SECTIONS = ("errors", "author", "see_also", "resources")
# Markdown spans the schemas use: `code`, **bold**, *italic*, <https://link>.
_SPAN = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*(.+?)\*|<(https?://[^>]+)>")


def escape(text: str) -> str:
    """Text as roff prints it literally (a minus stays an ASCII minus, so options can be copied; other characters
    than ASCII as named glyphs, which every roff reads)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def inline(text: str) -> str:
    """One line of a schema's markdown in roff: code and bold in bold, emphasis in italics."""
    out, last = [], 0
    for m in _SPAN.finditer(text):
        out.append(escape(text[last:m.start()]))
        code, bold, italic, link = m.groups()
        if link is not None:
            out.append(escape(link))
        else:
            font = "I" if italic is not None else "B"
            out.append(f"\\f{font}{escape(code or bold or italic)}\\fR")
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def line(text: str) -> str:
    """A text line that roff cannot take for a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(lines: list[str]) -> list[str]:
    """A schema's list of lines: blank ones separate paragraphs, ``- `` ones are bullet items."""
    out: list[str] = []
    for text in lines:
        if not text.strip():
            out.append(".PP")
        elif text.startswith("- "):
            out += [".IP \\(bu 2", line(inline(text[2:]))]
        else:
            out.append(line(inline(text)))
    return out


def type_name(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and "type" in prop.get("items", {}):
        kind = f"array of {prop['items']['type']}s"
    return kind


def member(name: str, prop: dict[str, Any], optional: bool, depth: int) -> list[str]:
    """One parameter or answer field, as a bullet item; an object's fields follow, indented."""
    head = f"\\fB{escape(name)}\\fR ({escape(type_name(prop))}{', optional' if optional else ''})"
    if "enum" in prop:
        head += " (one of " + ", ".join(f"\"{escape(str(v))}\"" for v in prop["enum"]) + ")"
    text = head + (": " + " ".join(inline(d) for d in prop.get("description", [])) if prop.get("description")
                   else "")
    if "default" in prop:
        text += f" The default is {escape(str(prop['default']))}."
    out = [".IP \\(bu 2", line(text)]
    nested = prop if prop.get("type") == "object" else prop.get("items", {}) if prop.get("type") == "array" else {}
    if nested.get("properties"):
        out += [".RS 4", *members(nested, depth + 1), ".RE"]
    return out


def members(obj: dict[str, Any], depth: int = 0) -> list[str]:
    required = set(obj.get("required", []))
    out: list[str] = []
    for name, prop in obj.get("properties", {}).items():
        out += member(name, prop, name not in required, depth)
    return out


def synopsis(rpc: str, request: dict[str, Any]) -> str:
    required = set(request.get("required", []))
    params = [f"\\fI{escape(p)}\\fR" if p in required else f"[\\fI{escape(p)}\\fR]"
              for p in request.get("properties", {})]
    return " ".join([f"\\fB{escape(rpc)}\\fR", *params])


def shell_command(rpc: str, params: Any) -> str:
    if isinstance(params, list):
        return " ".join(["lightning-cli", rpc, *(json.dumps(p) if isinstance(p, str) else str(p) for p in params)])
    words = ["lightning-cli", rpc, "-k"]
    for key, value in (params or {}).items():
        words.append(f"\"{key}\"=\"{value}\"" if isinstance(value, str) else f"\"{key}\"='{json.dumps(value)}'")
    return " ".join(words)


def block(text: str) -> list[str]:
    """Preformatted lines (commands, JSON)."""
    return [".RS 4", ".nf", *(line(escape(t)) for t in text.splitlines()), ".fi", ".RE"]


def examples(rpc: str, schema: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for number, example in enumerate(schema.get("examples", []), start=1):
        out += [".PP", f"\\fBExample {number}\\fR" + (": " + inline(" ".join(example["description"]))
                                                      if example.get("description") else "")]
        out += [".PP", "Request:", *block(shell_command(rpc, example["request"].get("params")))]
        out += [".PP", *block(json.dumps(example["request"], indent=2))]
        out += [".PP", "Response:", *block(json.dumps(example["response"], indent=2))]
    return out


def page(schema: dict[str, Any]) -> str:
    """The man page of one method's schema."""
    rpc = schema["rpc"]
    name = f"lightning-{rpc}"
    out = [f".TH \"{escape(name.upper())}\" \"7\" \"\" \"{SOURCE}\" \"{SOURCE} Manual\"",
           ".SH NAME", f"{escape(name)} \\- {inline(schema['title'])}",
           ".SH SYNOPSIS", synopsis(rpc, schema.get("request", {})),
           ".SH DESCRIPTION"]
    if schema.get("added"):
        out.append(f"Command \\fIadded\\fR in {escape(schema['added'])}.")
        out.append(".PP")
    out += paragraphs(schema.get("description", []))
    out += members(schema.get("request", {}))
    out += [".SH \"RETURN VALUE\"", "On success, an object is returned, containing:", *members(schema["response"])]
    for section in FOOTER_SECTIONS:
        if section not in schema:
            continue
        out.append(f".SH \"{section.replace('_', ' ').upper()}\"")
        if section == "see_also":
            out.append(", ".join(f"\\fBlightning\\-{escape(ref)}\\fR(7)" for ref in schema[section]))
        else:
            out += paragraphs(schema[section])
    if schema.get("examples"):
        out += [".SH EXAMPLES", *examples(rpc, schema)]
    return "\n".join(out) + "\n"


def pages() -> dict[Path, str]:
    """Every page the schemas give, by the path it belongs at."""
    out = {}
    for path in sorted(SCHEMAS.glob("hashpool-*.json")):
        schema = json.loads(path.read_text())
        out[MAN / f"lightning-{schema['rpc']}.7"] = page(schema)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    wanted = pages()
    stale = sorted(p.name for p, text in wanted.items() if not p.exists() or p.read_text() != text)
    extra = sorted(p.name for p in MAN.glob("lightning-hashpool-*.7") if p not in wanted)
    if args.check:
        for name in stale + extra:
            print(f"doc/man/{name} is not what doc/schemas give: run python3 doc/genman.py", file=sys.stderr)
        return 1 if stale or extra else 0
    MAN.mkdir(exist_ok=True)
    for path, text in wanted.items():
        path.write_text(text)
    for name in extra:
        (MAN / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
