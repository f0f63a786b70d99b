"""Help (`?` / F1): what the app does and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

HELP = """\
# mmtui

Search a product catalog by **text** or by **image**, in one box.

## Searching
| Key | What it does |
|---|---|
| *type* | search as you type (text, or a path to an image file: pasted, dropped, `~` and `file://` work) |
| `like:ID` | products that look like product ID |
| `↓` / `Enter` | go to the results |
| `↑` `↓` | move through the results; the detail pane follows |
| `Enter` | open the product: large image and every attribute |
| `m` | more like this: search by the highlighted product's image |
| `/` or `Esc` | back to the search box (`Esc` again clears it) |
| `ctrl+f` | show or hide filters: category, colour, gender, price range, mode |
| `ctrl+r` | next mode: image → text → lexical → hybrid → fused |

## Screens
| Key | Screen |
|---|---|
| `F1` / `?` | this help |
| `F2` | metrics: eval reports and training curves of each checkpoint |
| `F3` | train an adapter with a live loss curve (`c` cancels) |
| `F4` | build the index from a catalog, with progress and rejects by reason |
| `F5` | switch model: the base model or a trained checkpoint |
| `ctrl+p` | command palette: every action by name |
| `ctrl+q` | quit (running work is cancelled) |

## Modes
- **image**: the query against product images (CLIP-style shared space)
- **text**: the query against product texts, in the same space
- **lexical**: words (SQLite FTS5, BM25); works before the model has loaded
- **hybrid**: all signals fused by rank; each result shows the score of every signal
- **fused**: one combined image + text vector per product

Images are drawn with Kitty graphics or Sixel when the terminal supports them, else half-blocks
(always inside tmux). Set `MMTUI_IMAGES=halfcell|sixel|tgp|none` to choose.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
        yield Footer(compact=True)
