"""Markdown to sanitized HTML: a message's `content_html` (SPEC 11), rendered once, when
the message is stored or edited, so every client shows the same thing.

Two lines of defence:

1. markdown-it-py, CommonMark preset, with raw HTML off (`<b>` stays the text "<b>"),
   bare URLs made links (linkify-it-py), ~~strikethrough~~, and line breaks kept as in
   a chat. Headings are off (a line starting with "# " is a chat line, not a title), and
   an image is shown as a link to it (no `<img>`: no tracking pixels, no layout games).
   Only http, https and mailto URLs become links; anything else stays text.
2. nh3 (the Rust `ammonia` sanitizer) over the result, with an explicit list of tags,
   attributes, classes and URL schemes: if a bug in the first line ever let markup
   through, the second removes it. Every link opens in a new tab with
   `rel="noopener noreferrer"`.

Mentions (`@username` of a member, `@here`, `@room`) become
`<span class="mention" data-user-id="7">@alice</span>` and
`<span class="mention mention-broadcast">@room</span>`, in text only: never inside
code or a link. Rendering is a pure function of the text and the names it may mention
(`render`); who those are is the caller's question (`messaging.mentions`).
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# A mention: `@` after a start, a space or punctuation other than the characters of a
# username (so `me@example.com` is no mention), then a username's characters, ending on a
# letter, digit or `_` ("@alice." mentions alice). Usernames: `accounts.names`.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_.+@-])@([A-Za-z0-9_](?:[A-Za-z0-9_.+@-]*[A-Za-z0-9_])?)")
BROADCASTS = frozenset(("here", "room"))
_SAFE_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_LANGUAGE = re.compile(r"[^A-Za-z0-9_+#.-]")
# Bidi embeddings, overrides and isolates: shown text that reads backwards ("exe.txt"
# that is "txt.exe"), or that reorders the page around the message. (`content` keeps them.)
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

ALLOWED_TAGS = frozenset(
    (
        "a",
        "blockquote",
        "br",
        "code",
        "del",
        "em",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "span",
        "strong",
        "ul",
    )
)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message's rendering: the sanitized HTML, the ids of the users it mentions by
    name (in order of first mention), and whether it says `@here` / `@room`."""

    html: str
    mentions: list[int] = field(default_factory=list)
    mentions_here: bool = False
    mentions_room: bool = False


def mention_candidates(content: str) -> set[str]:
    """The names `content` may mention, in lower case (a cheap over-estimate: code spans
    are not told apart here). Empty without an `@`."""
    if "@" not in content:
        return set()
    names: set[str] = set()
    for match in MENTION_RE.finditer(content):
        name = match.group(1).lower()
        names.add(name)
        head = name.partition("@")[0]
        if head:
            names.add(head)
    return names - BROADCASTS


def render(content: str, *, mentionable: Mapping[str, int] | None = None) -> Rendered:
    """Render `content`. `mentionable`: the users it may mention, by lower-case username
    (the room's members); `@here` and `@room` are always recognised."""
    env: dict[str, Any] = {"mentionable": mentionable or {}, "mentions": [], "broadcast": set()}
    html = _plain_paragraph(content)
    if html is None:
        html = _parser().render(content, env)
    if not html.isascii():
        html = _BIDI_CONTROLS.sub("", html)
    clean = _cleaner().clean(html)
    broadcast = env["broadcast"]
    return Rendered(
        html=clean,
        mentions=list(dict.fromkeys(env["mentions"])),
        mentions_here="here" in broadcast,
        mentions_room="room" in broadcast,
    )


# ------------------------------------------------------------------ the parser

# Characters that may start or end Markdown (or an entity, a mention, an autolink), and
# the line breaks and controls: text without any of them is one plain paragraph.
_MARKUP = re.compile(r"[\\`*_\[\]<>!&~#@|\x00-\x1f\x7f]")
_BLOCK_START = frozenset("-+=0123456789")
# What every link linkify finds has (a scheme's `:`, a dot inside a host name, or
# "localhost"): without it, linkify's own (slower) pretest need not run.
_LINK_HINT = re.compile(r"[.:]\S|localhost", re.IGNORECASE)


def _plain_paragraph(content: str) -> str | None:
    """The HTML the parser would make of `content` when it is one line of plain text (most
    chat messages): a paragraph of the escaped text, in a few microseconds instead of the
    parser's tens. None when the parser must look (tests/messaging/test_rendering.py holds
    the two to the same output)."""
    if (
        not content
        or content != content.strip()
        or content[0] in _BLOCK_START
        or _MARKUP.search(content)
        or (_LINK_HINT.search(content) and _parser().linkify.pretest(content))  # type: ignore[union-attr]
    ):
        return None
    return f"<p>{escape(content, quote=False)}</p>\n"


def _safe_link(url: str) -> bool:
    """markdown-it's `validateLink`, stricter: http(s) and mailto only. The URL is
    normalised already (entities decoded, percent-encoded), so `&#106;avascript:` and
    `java\\tscript:` arrive as what a browser would read."""
    return bool(_SAFE_URL.match(url.lstrip()))


def _link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    token.attrSet("target", "_blank")
    token.attrSet("rel", "noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """`![alt](url)` as a link to the picture, named by its alt text (or the URL)."""
    token = tokens[idx]
    url = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or url
    return f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(alt)}</a>'


def _fence(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A fenced block; its language kept as a plain `language-x` class, nothing else."""
    token = tokens[idx]
    language = _LANGUAGE.sub("", token.info.strip().split(" ", 1)[0])[:32]
    css = f' class="language-{language}"' if language else ""
    return f"<pre><code{css}>{escape(token.content, quote=False)}</code></pre>\n"


def _mention(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    shown = escape(token.content)
    user_id = token.meta.get("user_id")
    if user_id is None:
        return f'<span class="mention mention-broadcast">{shown}</span>'
    return f'<span class="mention" data-user-id="{int(user_id)}">{shown}</span>'


def _mentions(state: StateCore) -> None:
    """A core rule, after the inline ones: split the text tokens outside links into text
    and `mention` tokens. Code spans are `code_inline` tokens, code blocks are block
    tokens, and autolinks and linkified URLs sit between `link_open` and `link_close`:
    none of them is looked at."""
    env = state.env
    mentionable: Mapping[str, int] = env["mentionable"]
    for block in state.tokens:
        if block.type != "inline" or not block.children or "@" not in block.content:
            continue
        children: list[Token] = []
        in_link = 0
        for token in block.children:
            if token.type == "link_open":
                in_link += 1
            elif token.type == "link_close":
                in_link -= 1
            if token.type != "text" or in_link or "@" not in token.content:
                children.append(token)
                continue
            children.extend(_split(token, mentionable, env))
        block.children = children


def _split(token: Token, mentionable: Mapping[str, int], env: EnvType) -> list[Token]:
    text = token.content
    parts: list[Token] = []
    start = 0
    for match in MENTION_RE.finditer(text):
        name = match.group(1)
        key = name.lower()
        end = match.end()
        user_id: int | None = None
        if key in BROADCASTS:
            env["broadcast"].add(key)
        elif key in mentionable:
            user_id = mentionable[key]
        elif "@" in key and key.partition("@")[0] in mentionable:
            # "@alice@bob": alice, then the text "@bob".
            key = key.partition("@")[0]
            user_id = mentionable[key]
            end = match.start() + 1 + len(key)
        else:
            continue
        if match.start() > start:
            parts.append(_text(text[start : match.start()]))
        mention = Token("mention", "", 0)
        mention.content = text[match.start() : end]
        mention.meta = {"user_id": user_id}
        parts.append(mention)
        if user_id is not None:
            env["mentions"].append(user_id)
        start = end
    if not parts:
        return [token]
    if start < len(text):
        parts.append(_text(text[start:]))
    return parts


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


@cache
def _parser() -> MarkdownIt:
    """One parser for the process: building one costs ~1 ms, and rendering keeps its
    state in the call, so threads share it."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["linkify", "strikethrough"])
    md.disable(["heading", "lheading", "html_block", "html_inline"])
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.core.ruler.push("mentions", _mentions)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("mention", _mention)
    return md


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={
            "*": set(),  # not ammonia's default `lang` and `title` everywhere
            "a": {"href"},
            "ol": {"start"},
            "span": {"data-user-id"},
            "code": {"class"},
        },
        allowed_classes={"span": {"mention", "mention-broadcast"}},
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
