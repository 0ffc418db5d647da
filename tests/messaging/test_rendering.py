"""`messaging.rendering`: Markdown in, sanitized HTML out (SPEC 11)."""

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging import rendering
from messaging.rendering import ALLOWED_TAGS, mention_candidates, render

MEMBERS = {"alice": 1, "bob": 2, "bob@example.com": 3}


def html(text: str) -> str:
    return render(text, mentionable=MEMBERS).html


def link(url: str, text: str | None = None) -> str:
    return f'<a href="{url}" target="_blank" rel="noopener noreferrer">{text or url}</a>'


# ------------------------------------------------------------------ CommonMark


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("*emphasis* and _this_", "<p><em>emphasis</em> and <em>this</em></p>\n"),
        ("**strong** and __this__", "<p><strong>strong</strong> and <strong>this</strong></p>\n"),
        ("~~gone~~", "<p><s>gone</s></p>\n"),
        ("a `code <b>` span", "<p>a <code>code &lt;b&gt;</code> span</p>\n"),
        (
            "```python\nif a < b:\n    pass\n```",
            '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>\n',
        ),
        ("```\nplain\n```", "<pre><code>plain\n</code></pre>\n"),
        ("    indented code", "<pre><code>indented code\n</code></pre>\n"),
        ("> quoted\n> twice", "<blockquote>\n<p>quoted<br>\ntwice</p>\n</blockquote>\n"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"),
        ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'),
        ("[site](https://example.com)", f"<p>{link('https://example.com', 'site')}</p>\n"),
        ("<https://example.com/a?b=1>", f"<p>{link('https://example.com/a?b=1')}</p>\n"),
        ("<mailto:me@example.com>", f"<p>{link('mailto:me@example.com')}</p>\n"),
        (
            "see https://example.com/x, then",
            f"<p>see {link('https://example.com/x')}, then</p>\n",
        ),
        ("www.example.org", f"<p>{link('http://www.example.org', 'www.example.org')}</p>\n"),
        ("line one\nline two", "<p>line one<br>\nline two</p>\n"),
        ("first\n\nsecond", "<p>first</p>\n<p>second</p>\n"),
        ("a\n\n---\n\nb", "<p>a</p>\n<hr>\n<p>b</p>\n"),
    ],
)
def test_commonmark_subset(source, expected):
    assert html(source) == expected


def test_headings_stay_chat_lines():
    assert html("# not a title") == "<p># not a title</p>\n"
    assert html("text\n===") == "<p>text<br>\n===</p>\n"


def test_an_image_is_a_link_to_it_never_an_img():
    out = html("![the cat](https://example.com/cat.png)")
    assert out == f"<p>{link('https://example.com/cat.png', 'the cat')}</p>\n"
    assert "<img" not in html("![](https://example.com/cat.png)")


def test_text_is_escaped_once():
    assert html("a < b & c > d \"q\" 'a'") == "<p>a &lt; b &amp; c &gt; d \"q\" 'a'</p>\n"
    assert html("&amp; &copy;") == "<p>&amp; ©</p>\n"


def test_empty_content_renders_empty():
    assert html("") == ""


# ------------------------------------------------------------------------- XSS

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="x" onerror="alert(1)">',
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<a href=https://ok.example onclick=alert(1)>x</a>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](java\nscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#x3A;alert(1))",
    "[x](&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,<script>alert(1)</script>)",
    "[x](file:///etc/passwd)",
    "[x](//evil.example/path)",
    "[x](/relative)",
    "<javascript:alert(1)>",
    "<data:text/html,hi>",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml,<svg onload=alert(1)>)",
    '[x](https://ok.example "title" onmouseover="alert(1)")',
    '[x](https://ok.example "a\\" onmouseover=\\"alert(1))',
    '[x](https://ok.example/"onmouseover="alert(1))',
    "[x](https://ok.example/'><script>alert(1)</script>)",
    "[<img src=x onerror=alert(1)>](https://ok.example)",
    "**<script>alert(1)</script>**",
    "> <script>alert(1)</script>\n> - <img src=x onerror=alert(1)>",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    '```" onmouseover="alert(1)\n```',
    "```<script>\nx\n```",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "[x]: javascript:alert(1)\n\n[y][x]",
    "https://ok.example/<script>alert(1)</script>",
    "javascript:alert(1)",
    "mailto:x@example.com?body=<script>",
    "\u202eexe.txt [click](https://ok.example/\u202egnp.exe)",
    "@alice<script>alert(1)</script>",
    "<span class=mention data-user-id=1>@alice</span>",
]


class Markup(HTMLParser):
    """The elements and attributes a browser would build from the HTML (the text,
    escaped, is no markup: `&lt;img onerror=…&gt;` is words on the screen)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


@pytest.mark.parametrize("source", XSS)
def test_hostile_markdown_comes_out_inert(source):
    out = html(source)
    assert "<script" not in out.lower()
    assert not re.search(r"<[^>]*\son\w+\s*=", out, re.IGNORECASE), out
    assert "\u202e" not in out
    for tag, attrs in Markup(out).elements:
        assert tag in ALLOWED_TAGS, out
        assert not any(name.startswith("on") or name == "style" for name in attrs), out
        if tag == "a":
            href = (attrs.get("href") or "").strip().lower()
            assert href.startswith(("http:", "https:", "mailto:")), out
            assert attrs.get("target") == "_blank"
            assert attrs.get("rel") == "noopener noreferrer"
        else:
            assert "href" not in attrs and "src" not in attrs, out


def test_link_titles_are_dropped_and_quotes_cannot_break_out():
    out = html('[x](https://ok.example "t\\" onclick=alert(1)")')
    assert out == f"<p>{link('https://ok.example', 'x')}</p>\n"


def test_entity_encoded_javascript_stays_text():
    out = html("[x](&#106;avascript:alert(1))")
    assert "<a" not in out
    assert out.startswith("<p>[x](")


# -------------------------------------------------------------------- mentions


def test_mentions_of_members_render_as_spans_in_any_case():
    rendered = render("hi @alice and @BOB!", mentionable=MEMBERS)
    assert rendered.html == (
        '<p>hi <span class="mention" data-user-id="1">@alice</span> and '
        '<span class="mention" data-user-id="2">@BOB</span>!</p>\n'
    )
    assert rendered.mentions == [1, 2]


def test_a_mention_ends_before_trailing_punctuation():
    rendered = render("thanks @alice.", mentionable=MEMBERS)
    assert rendered.mentions == [1]
    assert rendered.html.endswith("</span>.</p>\n")


def test_a_username_with_an_at_sign_is_mentionable():
    assert render("cc @bob@example.com", mentionable=MEMBERS).mentions == [3]
    # Not a member by the whole name: the part before the second `@`.
    assert render("cc @alice@nowhere", mentionable=MEMBERS).mentions == [1]


def test_unknown_names_and_emails_are_no_mentions():
    rendered = render("@carol wrote to me@alice.example", mentionable=MEMBERS)
    assert rendered.mentions == []
    assert 'class="mention' not in rendered.html


def test_no_mentions_in_code_or_links():
    for source in (
        "`@alice`",
        "```\n@alice\n```",
        "    @alice",
        "[@alice](https://example.com)",
        "<https://example.com/@alice>",
        "https://example.com/@alice",
    ):
        rendered = render(source, mentionable=MEMBERS)
        assert rendered.mentions == [], source
        assert "mention" not in rendered.html, source


def test_here_and_room_are_broadcast_mentions():
    rendered = render("@here and @ROOM", mentionable={})
    assert rendered.mentions_here and rendered.mentions_room
    assert rendered.html.count('<span class="mention mention-broadcast">') == 2
    plain = render("`@here` @rooms", mentionable={})
    assert not plain.mentions_here and not plain.mentions_room


def test_mentions_inside_emphasis_and_quotes():
    rendered = render("> **@alice** look", mentionable=MEMBERS)
    assert rendered.mentions == [1]
    assert '<strong><span class="mention" data-user-id="1">@alice</span></strong>' in rendered.html


def test_mention_candidates_are_a_cheap_superset():
    assert mention_candidates("no at sign") == set()
    assert mention_candidates("@Alice `@bob` @here x@y @carol@z") == {
        "alice",
        "bob",
        "carol@z",
        "carol",
    }


# ------------------------------------------------------------------------ speed


def parsed(text: str) -> str:
    """`html(text)` the long way, through the parser (never the plain-paragraph path)."""
    env = {"mentionable": MEMBERS, "mentions": [], "broadcast": set()}
    return rendering._cleaner().clean(rendering._parser().render(text, env))


@given(
    st.text(
        alphabet=st.sampled_from(list("ab1. ,'\"-+=:/?()%$é\u00a0\u3000\t\nwcom@*_`[]<>&~#|!рф")),
        max_size=40,
    )
)
@settings(max_examples=1000, deadline=None)
def test_the_plain_paragraph_shortcut_renders_what_the_parser_renders(text):
    assert html(text) == parsed(text)


@pytest.mark.parametrize(
    "text",
    [
        "see you at 5pm.",
        "she said \"hi\" and 'bye'",
        "1 apple",
        "- not a list?",
        "version 1.2.3",
        "example.com",
        "a\u00a0b",
        " leading space",
        "tab\tinside",
        "ünïcödé ✓ 😀",
        "localhost",
        "see LOCALHOST now",
        "localhost:8000/x",
        "a.b",
        "x.y z",
        "go to example.org.",
        "foo:bar",
        "1.2.3.4",
        "xn--80ak6aa92e.com",
        "пример.рф",
        "例子。中国",
        "\uff57\uff57\uff57\uff0eexample\uff0ecom",  # fullwidth "www.example.com"
    ],
)
def test_the_plain_paragraph_shortcut_on_samples(text):
    assert html(text) == parsed(text)


def test_a_plain_line_skips_the_parser(monkeypatch):
    """The group-commit writer renders every post: a plain chat line (most of them) is
    escaped and wrapped without a Markdown parse. (Speed itself is a benchmark's question,
    not a test's: ~10 µs against ~150 µs for a line with a link and a mention, measured
    with `timeit`.)"""
    calls = []
    parser = rendering._parser()
    monkeypatch.setattr(parser, "render", lambda *a, **k: calls.append(a) or "")
    render("ok, see you at five then", mentionable=MEMBERS)
    assert calls == []
    render("hi @alice, see https://example.com it's *really* nice", mentionable=MEMBERS)
    assert len(calls) == 1
