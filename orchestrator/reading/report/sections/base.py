"""The one concept every part of the report page is: a `Section`."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrator.reading.report.context import Context
from orchestrator.reading.report.figures import img_html


class Section:
    """One section of the page: its anchor id, title and how-to-read line, the numbers it shows and how it draws them.

    `data(ctx)` goes into the report's data model (plain JSON-able values, checked by the tests against
    the run's own files); `body(data, colors)` turns it into HTML, by default the section's `figure` as an
    embedded PNG (none when `figure` returns None); `notes(data)` are plain-language caveats shown under it.
    To add a section, subclass this and add an instance to `SECTIONS`: the page, its navigation and the
    tests pick it up from there.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    how: ClassVar[str]

    def data(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def figure(self, data: dict[str, Any], colors: dict[str, Any]) -> Any:
        """A matplotlib Figure of `data`, or None when there is nothing to draw."""
        return None

    def body(self, data: dict[str, Any], colors: dict[str, Any]) -> str:
        fig = self.figure(data, colors)
        return "" if fig is None else img_html(fig, self.title)

    def notes(self, data: dict[str, Any]) -> list[str]:
        return []
