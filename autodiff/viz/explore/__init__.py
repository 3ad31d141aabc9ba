"""`explore(root)`: the graph as an interactive page (a Jupyter widget, or one offline
HTML file via `save`)."""

from .view import Explorer, explore, explorer_widget, page_part

__all__ = ["explore", "Explorer", "explorer_widget", "page_part"]
