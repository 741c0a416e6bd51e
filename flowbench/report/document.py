"""A report as a list of blocks, rendered to markdown (figures linked) and to one
self-contained HTML file (figures embedded as base64, no network needed to open it).

Both renderings open with a contents list of the level-2 sections, and end with the collapsed
parts (:meth:`Document.collapsed`: settings, JSON) -- a ``<details>`` element in HTML, a plain
section in markdown. In HTML every table sits in its own horizontally scrolling box whose first
column stays in view (``position: sticky``), so a wide table never widens the page, and a
"mean ± std" cell puts the spread under the mean to keep columns narrow.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .tables import markdown_table
from .tails import MARK


@dataclass
class Block:
    kind: str  # "heading" | "text" | "table" | "figure" | "list" | "collapsed"
    content: object
    level: int = 2
    caption: str = ""
    floatfmt: str = ".4g"


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block("heading", text, level))

    def text(self, text: str) -> None:
        self.blocks.append(Block("text", text))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(Block("list", items))

    def table(self, frame: pd.DataFrame, caption: str = "", floatfmt: str = ".4g") -> None:
        self.blocks.append(Block("table", frame, caption=caption, floatfmt=floatfmt))

    def figure(self, path: Path, caption: str = "") -> None:
        self.blocks.append(Block("figure", Path(path), caption=caption))

    def collapsed(self, title: str) -> "Document":
        """A part shown folded in HTML (``<details>``), as a level-2 section in markdown; fill
        the returned document."""
        part = Document(title)
        self.blocks.append(Block("collapsed", part))
        return part

    def sections(self) -> list[str]:
        """Titles of the level-2 sections and collapsed parts, in order (the contents list)."""
        return [str(b.content) if b.kind == "heading" else b.content.title
                for b in self.blocks
                if (b.kind == "heading" and b.level == 2) or b.kind == "collapsed"]

    # --- rendering -------------------------------------------------------------------------

    def to_markdown(self, relative_to: Path) -> str:
        lines = [f"# {self.title}", ""]
        if len(self.sections()) > 1:  # numbered, so it never merges with a bullet list below
            lines += ["Contents:", ""]
            lines += [f"{i}. [{s}](#{slug(s)})" for i, s in enumerate(self.sections(), 1)] + [""]
        return "\n".join(lines + self._markdown_blocks(relative_to))

    def _markdown_blocks(self, relative_to: Path) -> list[str]:
        lines: list[str] = []
        for block in self.blocks:
            if block.kind == "heading":
                lines += ["#" * block.level + " " + str(block.content), ""]
            elif block.kind == "text":
                lines += [str(block.content), ""]
            elif block.kind == "list":
                lines += [f"- {item}" for item in block.content] + [""]
            elif block.kind == "table":
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
                lines += [markdown_table(block.content, block.floatfmt), ""]
            elif block.kind == "figure":
                target = _relative(block.content, relative_to)
                lines += [f"![{block.caption}]({target})", ""]
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
            elif block.kind == "collapsed":
                lines += [f"## {block.content.title}", ""]
                lines += block.content._markdown_blocks(relative_to)
        return lines

    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        if len(self.sections()) > 1:
            items = "".join(f'<li><a href="#{slug(s)}">{html.escape(s)}</a></li>'
                            for s in self.sections())
            body.append(f'<nav class="contents"><b>Contents</b><ol>{items}</ol></nav>')
        return _PAGE.format(title=html.escape(self.title),
                            body="\n".join(body + self._html_blocks()))

    def _html_blocks(self) -> list[str]:
        body = []
        for block in self.blocks:
            if block.kind == "heading":
                level = min(6, block.level)
                text = str(block.content)
                anchor = f' id="{slug(text)}"' if level == 2 else ""
                body.append(f"<h{level}{anchor}>{html.escape(text)}</h{level}>")
            elif block.kind == "text":
                body.append(f"<p>{_inline(str(block.content))}</p>")
            elif block.kind == "list":
                items = "".join(f"<li>{_inline(item)}</li>" for item in block.content)
                body.append(f"<ul>{items}</ul>")
            elif block.kind == "table":
                body.append(_html_table(block.content, block.caption, block.floatfmt))
            elif block.kind == "figure":
                data = base64.b64encode(Path(block.content).read_bytes()).decode("ascii")
                caption = html.escape(block.caption)
                body.append(f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{caption}</figcaption></figure>")
            elif block.kind == "collapsed":
                part = block.content
                body.append(f'<details id="{slug(part.title)}"><summary>'
                            f"{html.escape(part.title)}</summary>")
                body += part._html_blocks()
                body.append("</details>")
        return body


def slug(text: str) -> str:
    """The anchor of a heading, as GitHub derives it: lower case, punctuation dropped, spaces
    to hyphens (so the markdown contents links work there too)."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _inline(text: str) -> str:
    """Escape, then render the little markdown we use in text: **bold** and `code`."""
    escaped = html.escape(text)
    parts = escaped.split("**")
    escaped = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """A table cell: "mean ± std" with the spread on its own smaller line (a bold cell stays
    bold on both lines, a trailing mark stays beside the mean)."""
    bold = len(text) > 4 and text.startswith("**") and text.endswith("**")
    inner = text[2:-2] if bold else text
    if " ± " in inner:
        mean, spread = inner.split(" ± ", 1)
        mark = ""
        if spread.endswith(f" {MARK}"):
            spread, mark = spread[:-len(MARK) - 1], f" {MARK}"
        rendered = f'{_inline(mean + mark)}<span class="sd">± {_inline(spread)}</span>'
    else:
        rendered = _inline(inner)
    return f"<b>{rendered}</b>" if bold else rendered


def _header(text: str) -> str:
    """A column name that may break after "/" or ":" (``realnvp/bimodal``, ``ref:gmm``)."""
    return re.sub(r"([/:])", r"\1<wbr>", html.escape(text))


def _html_table(frame: pd.DataFrame, caption: str, floatfmt: str) -> str:
    if frame.empty:
        return "<p><i>(no data)</i></p>"
    data = frame.reset_index()
    head = "".join(f"<th>{_header(str(c))}</th>" for c in data.columns)
    rows = []
    for row in data.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if value != value else format(value, floatfmt)
            else:
                text = str(value)
            cells.append(f"<td>{_cell(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
        color: #222; line-height: 1.45; }}
h2 {{ margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }}
nav.contents {{ background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.6em 1em;
               display: inline-block; }}
nav.contents ol {{ margin: 0.3em 0 0 0; padding-left: 1.4em; }}
.scroll {{ overflow-x: auto; max-width: 100%; margin: 1em 0; }}
table {{ border-collapse: separate; border-spacing: 0; font-size: 0.85em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.55em; text-align: right;
          vertical-align: top; white-space: nowrap; background: #fff; }}
th {{ background: #f3f3f3; white-space: normal; vertical-align: bottom; min-width: 4em; }}
td:first-child, th:first-child {{ text-align: left; position: sticky; left: 0; z-index: 1;
                                   border-right: 1px solid #ccc; }}
th:first-child {{ background: #f3f3f3; }}
tbody tr:last-child td {{ border-bottom: 2px solid #bbb; }}
.sd {{ display: block; font-size: 0.8em; color: #666; }}
caption {{ caption-side: top; text-align: left; font-style: italic; padding: 0.3em 0; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-style: italic; color: #555; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
details {{ margin-top: 2em; border-top: 1px solid #ddd; padding-top: 0.5em; }}
details > summary {{ font-size: 1.3em; font-weight: bold; cursor: pointer; }}
details td, details th {{ white-space: normal; max-width: 40em; text-align: left; }}
</style></head>
<body>
{body}
</body></html>
"""
