"""The statuses of campaigns, sending lines and contacts, and the moves a campaign may make.

Written once here; the SQL (store/) and the Python (sending, CLI, reports, sensors) read these
names. The database keeps campaign and line statuses as text and a contact's send status as a
smallint; its CHECK constraints list the same values (tests/test_statuses.py holds them together).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class CampaignStatus(StrEnum):
    """The seed's statuses (draft, processing, scheduled, running) and the four it lacked."""

    DRAFT = "draft"  # step 1 done: name, subject, template
    PROCESSING = "processing"  # its contacts are being imported
    SCHEDULED = "scheduled"  # step 2 done: files and lines; sent once imported and its start date has come
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"  # every contact final
    FAILED = "failed"  # its import failed; configuring it again fixes it
    CANCELLED = "cancelled"


class LineStatus(StrEnum):
    """Where a sending line stopped, so a later run resumes it exactly there."""

    PENDING = "pending"  # never run, or resumed: the launch sensor starts it
    SENDING = "sending"  # a run holds it (see store.lines for when that run counts as alive)
    WAITING = "waiting"  # start date, pacing or a provider's rate limit: relaunched at next_run_at
    QUOTA_REACHED = "quota_reached"  # its day's quota is spent: the daily schedule relaunches it
    PAUSED = "paused"
    ERROR = "error"  # needs a person (inactive server, refused API key…): its reason says why
    DONE = "done"  # no contact left for it
    CANCELLED = "cancelled"


class ContactStatus(IntEnum):
    """A contact's send state in its campaign's table (the seed's EmailLog): reserved under a row
    lock before the request, final after it."""

    PENDING = 0
    RESERVED = 1
    SENT = 2
    FAILED = 3
    UNKNOWN = 4  # a request may have reached the provider: never resent unless an operator says so
    SUPPRESSED = 5  # blacklisted at send time

    @property
    def word(self) -> str:
        """The state as reports and exports name it."""
        return self.name.lower()


# Lines a run picks up when no line is named: everything not finished or broken.
RUNNABLE_LINES = frozenset(
    {LineStatus.PENDING, LineStatus.SENDING, LineStatus.WAITING, LineStatus.QUOTA_REACHED, LineStatus.PAUSED}
)
# Campaigns that will change no more on their own: a watcher stops following them.
SETTLED_CAMPAIGNS = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED})
# Campaigns whose contacts may have been sent to (unknown ones may be put back in the pool).
SENDING_STARTED = frozenset({CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.COMPLETED})
# Campaigns not launched yet (a cancelled one may have been, or not).
NOT_LAUNCHED = frozenset(
    {CampaignStatus.DRAFT, CampaignStatus.PROCESSING, CampaignStatus.SCHEDULED, CampaignStatus.FAILED}
)


@dataclass(frozen=True)
class Move:
    """A change of a campaign's status: the statuses it may start from (in the order messages
    name them) and the one it leads to."""

    sources: tuple[CampaignStatus, ...]
    target: CampaignStatus

    def allows(self, status: str) -> bool:
        return status in self.sources

    @property
    def from_words(self) -> str:
        """The statuses it starts from, as a message names them: "draft/scheduled/failed"."""
        return "/".join(self.sources)


_S = CampaignStatus
# The campaign state machine: every status change the code makes is one of these.
# Step 2 (configure files and lines); a failed import is fixed this way too.
CONFIGURE = Move((_S.DRAFT, _S.SCHEDULED, _S.FAILED), _S.SCHEDULED)
# An import starts from a configured campaign, a failed one, or one whose import died.
START_IMPORT = Move((_S.SCHEDULED, _S.FAILED, _S.PROCESSING), _S.PROCESSING)
IMPORTED = Move((_S.PROCESSING,), _S.SCHEDULED)
IMPORT_FAILED = Move((_S.PROCESSING,), _S.FAILED)
LAUNCH = Move((_S.SCHEDULED,), _S.RUNNING)
COMPLETE = Move((_S.RUNNING,), _S.COMPLETED)
# Unknown contacts put back in the pool give a completed campaign work again.
REOPEN = Move((_S.COMPLETED,), _S.RUNNING)
PAUSE = Move((_S.RUNNING,), _S.PAUSED)
RESUME = Move((_S.PAUSED,), _S.RUNNING)
CANCEL = Move((_S.DRAFT, _S.SCHEDULED, _S.RUNNING, _S.PAUSED, _S.FAILED), _S.CANCELLED)
# What an operator may ask of a campaign (the control job, the CLI).
CONTROLS = {"pause": PAUSE, "resume": RESUME, "cancel": CANCEL}
