"""How sent messages are tracked: the tracking app's public URL and the token secret."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from campaign_pipelines.errors import ValidationError
from campaign_pipelines.headers import header_problem
from campaign_pipelines.rendering import Tracking


class TrackingResource(dg.ConfigurableResource):
    base_url: str = Field(description="Public URL of the tracking app (TRACKING_BASE_URL), e.g. https://t.example.com.")
    secret: str = Field(
        description="Secret signing the tracking tokens (TRACKING_SECRET); shared with the tracking app."
    )
    unsubscribe_mailto: str = Field(
        default="", description="Address also offered in List-Unsubscribe (mailto:); empty = the URL only."
    )
    feedback_sender_id: str = Field(default="", description="Sender id in the Feedback-ID header (Gmail FBL).")

    def config(self) -> Tracking:
        """The tracking settings; ValidationError when a value that goes into the List-Unsubscribe or
        Feedback-ID header of every message could break out of it."""
        typed = {
            "base_url": self.base_url,
            "unsubscribe_mailto": self.unsubscribe_mailto,
            "feedback_sender_id": self.feedback_sender_id,
        }
        problems = [problem for field, value in typed.items() if (problem := header_problem(field, value))]
        if problems:
            raise ValidationError("tracking resource", problems)
        return Tracking(
            base_url=self.base_url,
            secret=self.secret.encode(),
            unsubscribe_mailto=self.unsubscribe_mailto or None,
            feedback_sender_id=self.feedback_sender_id or None,
        )
