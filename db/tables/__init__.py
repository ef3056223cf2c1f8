"""The crackq tables, one module per area; importing this registers all of them on Base.metadata.

`results` is a public interface: reporting tools read it directly.
"""

from __future__ import annotations

from db.tables.artifacts import Artifact, ArtifactChunk
from db.tables.common import LABELS, RESULT_MODES
from db.tables.deadletters import DeadLetter
from db.tables.registry import MODEL_EVENT_ACTIONS, MODEL_STATUSES, ModelEvent, ModelVersion
from db.tables.rescore import RESCORE_STATUSES, SCORE_SOURCES, RescoreJob, ResultScore
from db.tables.results import RESULT_STATUSES, CrackMapRow, CrackRegionRow, Result
from db.tables.review import REVIEW_REASONS, REVIEW_STATES, Label, ReviewEntry
from db.tables.runs import RUN_STATUSES, TrainingRun
from db.tables.shadow import ShadowScore, ShadowSetting

__all__ = [
    "LABELS",
    "MODEL_EVENT_ACTIONS",
    "MODEL_STATUSES",
    "RESCORE_STATUSES",
    "RESULT_MODES",
    "RESULT_STATUSES",
    "REVIEW_REASONS",
    "REVIEW_STATES",
    "RUN_STATUSES",
    "SCORE_SOURCES",
    "Artifact",
    "ArtifactChunk",
    "CrackMapRow",
    "CrackRegionRow",
    "DeadLetter",
    "Label",
    "ModelEvent",
    "ModelVersion",
    "RescoreJob",
    "Result",
    "ResultScore",
    "ReviewEntry",
    "ShadowScore",
    "ShadowSetting",
    "TrainingRun",
]
