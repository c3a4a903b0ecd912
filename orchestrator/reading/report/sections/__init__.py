"""The report's sections, in page order: one `Section` object each (id, title, how to read it, data, drawing, notes).

A plain dict, like the other registries: the page, its navigation, the data model's keys and the
parametrized tests all come from it.
"""

from __future__ import annotations

from orchestrator.reading.report.sections.base import Section
from orchestrator.reading.report.sections.families import Families
from orchestrator.reading.report.sections.hyperparameters import (
    Importance,
    ParallelCoordinates,
)
from orchestrator.reading.report.sections.leaderboard import Leaderboard
from orchestrator.reading.report.sections.progress import BestSoFar, LearningCurves
from orchestrator.reading.report.sections.selection import ModelSelection
from orchestrator.reading.report.sections.timeline import Timeline

SECTIONS: dict[str, Section] = {
    s.id: s for s in (BestSoFar(), LearningCurves(), Families(), ParallelCoordinates(), Importance(), Timeline(), ModelSelection(), Leaderboard())
}

__all__ = ["SECTIONS", "Section"]
