"""A report as a list of blocks, rendered to markdown (figures linked) and to one
self-contained HTML file (figures embedded as base64, no network needed to open it)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .tables import markdown_table


@dataclass
class Block:
    kind: str  # "heading" | "text" | "table" | "figure" | "list"
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

    # --- rendering -------------------------------------------------------------------------

    def to_markdown(self, relative_to: Path) -> str:
        lines = [f"# {self.title}", ""]
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
        return "\n".join(lines)

    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if block.kind == "heading":
                level = min(6, block.level)
                body.append(f"<h{level}>{html.escape(str(block.content))}</h{level}>")
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
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


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


def _html_table(frame: pd.DataFrame, caption: str, floatfmt: str) -> str:
    if frame.empty:
        return "<p><i>(no data)</i></p>"
    data = frame.reset_index()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in data.columns)
    rows = []
    for row in data.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if value != value else format(value, floatfmt)
            else:
                text = str(value)
            cells.append(f"<td>{_inline(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
caption {{ caption-side: top; text-align: left; font-style: italic; padding: 0.3em 0; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-style: italic; color: #555; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
</style></head>
<body>
{body}
</body></html>
"""
