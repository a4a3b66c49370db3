"""Gates: `kiln advance`, `kiln pause` and `kiln abort`, folded into what they mean now.

They arrive as audit events from other processes while a deployment runs. A
pure fold over them answers, for the step running now: has someone aborted
the deployment, is it held by a pause, has the step been advanced past?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Gate(StrEnum):
    ADVANCE = "advance"  # end the pause running now; or lift a `kiln pause`
    PAUSE = "pause"  # hold at the current step until `kiln advance`
    ABORT = "abort"  # roll back now


@dataclass(frozen=True)
class GateRequest:
    gate: Gate
    actor: str
    at: datetime
    reason: str = ""

    def said(self) -> str:
        """'kiln abort by alice@host (bad numbers)', for step details and messages."""
        why = f" ({self.reason})" if self.reason else ""
        return f"kiln {self.gate} by {self.actor}{why}"


@dataclass(frozen=True)
class Gates:
    aborted: GateRequest | None = None
    paused: GateRequest | None = None  # the pause still in force
    advanced: GateRequest | None = None  # an advance of the step running now


def fold(requests: Sequence[GateRequest], step_started: datetime) -> Gates:
    """What ``requests`` (in the order they were made) mean for a step started then.

    An abort is final. An advance first lifts a pause in force; with none, it
    advances the running step, if it was made after that step started (an
    older one was for an earlier step).
    """
    aborted = paused = advanced = None
    for req in requests:
        if req.gate is Gate.ABORT:
            aborted = aborted or req
        elif req.gate is Gate.PAUSE:
            paused = req
        elif paused is not None:
            paused = None
        elif req.at >= step_started:
            advanced = req
    return Gates(aborted=aborted, paused=paused, advanced=advanced)
