"""Help (`?` / F1): what the app does and every key."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Search", [
        ("type", "search as you type: words, or a path to an image file (typed, pasted or dropped; "
                 "quotes, ~ and file:// are fine)"),
        ("like:ID", "products that look like product ID"),
        ("+  -", 'compound queries: "summer dress" + like:ID - floral, 2:red + ./photo.jpg; plain "without laces", '
                 '"not leather" too, when the catalog has the word'),
        ("↓  Enter", "go to the results"),
        ("↑ ↓", "move through the results; the detail pane follows"),
        ("Enter", "open the product: large image and every attribute"),
        ("m", "more like this: search by the highlighted product's image"),
        ("ctrl+o", "regions of the query photo: the parts that look like products, each with its products; "
                   "move (arrows) and resize (shift+arrows, + -) a box, Enter searches it"),
        ("r", 'refine the highlighted product: like:ID + what you type ("in red", "cheaper", "for men", '
              '"without the logo"); its kind is kept unless the words name another'),
        ("+  -", "on a result: like / not like it; the results are ranked again by your examples (Esc: back)"),
        ("v  s", "on the results: variants as one row (\"+3 colours\") on/off · sort: relevance, price, -price"),
        ("/  Esc", "back to the search box (Esc again clears it)"),
        ("ctrl+f", "filters: the mode, the sort, the results' kinds, colours, persons, brands and price bands "
                   "with counts (choosing one narrows the results in place), a price range"),
        ("ctrl+r", "next mode: image → text → lexical → hybrid → fused"),
        ("ctrl+g", "what the query was understood to ask for (kind, person, colour, brand, price): drop a part, "
                   "or keep only one value as a filter"),
    ]),
    ("Judge and compare", [
        ("2  1  0", "on a result: relevant, partly, not relevant (kept in the data dir; the cursor moves on)"),
        ("x", "forget the judgement of the highlighted result"),
        ("n", "jump to the next result not judged yet"),
        ("status", "a judged query shows judged N · P@10 · nDCG@10 · judged@10 (unjudged count as not relevant)"),
        ("F6", "compare: the query ranked two ways side by side; a / b change each ranker, s swaps"),
        ("i", "in compare: team-draft interleaving, blind; your judgements credit the side they came from"),
        ("CLI", "mmtui judgements (list, export, suggest) · mmtui eval --judged · mmtui train hybrid --judged"),
    ]),
    ("Screens", [
        ("F1  ?", "this help"),
        ("F2", "metrics: eval reports, and the training curves of each checkpoint"),
        ("F3", "train an adapter with a live loss curve (ctrl+s starts, ctrl+x cancels)"),
        ("F4", "build the index from a catalog, with progress and rejects by reason"),
        ("F5", "switch model: the base model or a trained checkpoint (● = active)"),
        ("F6", "compare two rankings of the query on screen (see above)"),
        ("ctrl+p", "command palette: every action by name"),
        ("ctrl+q", "quit (running work is cancelled and saved)"),
    ]),
    ("Modes", [
        ("image", "the query against product images, in the shared text-image space"),
        ("text", "the query against product texts, in the same space"),
        ("lexical", "words (SQLite FTS5, BM25); works while the model is still loading"),
        ("hybrid", "every signal fused by rank; each result shows the score of each signal"),
        ("fused", "one combined image + text vector per product"),
    ]),
]
FOOTNOTE = ("MMTUI_IMAGES=sixel|tgp|halfcell|none chooses the protocol; `mmtui doctor` shows what the terminal "
            "answered.")


def images_line(protocol: str, reason: str) -> Text:
    """Which image protocol is in use and why (mmtui.tui.terminal.choose)."""
    names = {"tgp": "Kitty graphics", "sixel": "Sixel", "halfcell": "half-blocks", "unicode": "Unicode blocks",
             "none": "off"}
    text = Text("Images: ", style="bold")
    text.append(f"{names.get(protocol, protocol)} ({protocol})", style="bold cyan")
    if reason:
        text.append(f" — {reason}")
    return text


def help_renderable(protocol: str = "", reason: str = "") -> Group:
    parts: list = [Text("mmtui — search a product catalog by text or by image, in one box.\n", style="bold")]
    for title, rows in SECTIONS:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=9)
        table.add_column(overflow="fold")
        for key, what in rows:
            table.add_row(key, what)
        parts += [Text(title, style="bold underline"), table, Text("")]
    if protocol:
        parts.append(images_line(protocol, reason))
    parts.append(Text(FOOTNOTE, style="dim"))
    return Group(*parts)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_renderable(getattr(self.app, "image_protocol", ""),
                                         getattr(self.app, "image_reason", "")))
        yield Footer(compact=True, show_command_palette=False)
