"""Amazon SES (API v2): sending through `SendEmail` and `SendBulkEmail`, events through SNS.

`url` is the regional endpoint, `https://email.<region>.amazonaws.com` (the region, whose
identities and quotas the account has there, is read from the host; an endpoint whose host names
no region, a proxy say, gives it as `?region=<region>`). The server's API key is the IAM access
key pair as one value, `ACCESS_KEY_ID:SECRET_ACCESS_KEY`, kept in the environment variable or file
the server names, like every other provider's key: the database holds only where it lives. Each
call is signed with SigV4 (service `ses`) by botocore's signer.

Batch form: `SendBulkEmail`, up to 50 destinations, always rendered from a template. Our messages
are already rendered per contact, so the call carries an inline template made only of placeholders
(`{{subject}}`, `{{html}}`, `{{text}}`) and each destination's `ReplacementTemplateData` holds that
contact's whole rendered subject and bodies; SES does not escape substituted values, so they
arrive as rendered. Each destination also has its own headers (`ReplacementHeaders`) and tags
(`ReplacementTags`), and SES answers one status per destination, so refusals are per recipient.
A message whose data would pass SES's 262,144 characters goes alone, through `SendEmail` with
simple content (up to 40 MB). `SendEmail` per message in a bounded batch of calls was the other
way: it would cost a call per recipient, and a call that fails halfway is harder to account for.

Correlation: our send id is the message tag `send_id` (letters, digits, `-` and `_`, as tags
allow), which SES hands back as `mail.tags.send_id` in every event it publishes through a
configuration set. Events reach us only through a configuration set with an SNS event
destination: give the sending identity a default configuration set (SES applies it to every call
that names none). SES has no idempotency key: a lost answer leaves the call's messages `unknown`.

Webhooks (providers.ses.webhook): SNS HTTPS notifications, their signature checked against the
certificate SNS serves, for the topics named in SES_SNS_TOPIC_ARNS.
"""

from __future__ import annotations

from collections.abc import Sequence

from campaign_pipelines.providers import _http
from campaign_pipelines.providers.base import (
    Delivery,
    OutgoingMessage,
    Provider,
    Sender,
    ensure_batch,
    ensure_header_safe,
    envelope_size,
)
from campaign_pipelines.providers.client import ProviderClient
from campaign_pipelines.providers.ses.send import (
    BULK_PATH,
    MAX_DESTINATIONS,
    MAX_TEMPLATE_DATA,
    SINGLE_PATH,
    bulk_body,
    credentials,
    endpoint,
    signed_headers,
    single_body,
    template_data,
    verdicts,
)
from campaign_pipelines.providers.ses.webhook import SesWebhook


class Ses(Provider):
    name = "ses"
    default_url = "https://email.us-east-1.amazonaws.com"
    webhook = SesWebhook()
    max_batch = MAX_DESTINATIONS
    # SES documents 40 MB per message, not per bulk call: a budget well under it.
    max_call_bytes = 20 * 1024 * 1024

    def send(
        self,
        client: ProviderClient,
        *,
        url: str,
        api_key: str,
        sender: Sender,
        messages: Sequence[OutgoingMessage],
        idempotency_key: str | None,
    ) -> list[Delivery]:
        ensure_batch(self, messages)
        ensure_header_safe(self, sender, messages)
        base, region = endpoint(url)
        keys = credentials(api_key)
        bulk = len(messages) > 1
        body = bulk_body(sender, messages) if bulk else single_body(sender, messages[0])
        target = base + (BULK_PATH if bulk else SINGLE_PATH)
        headers = signed_headers(target, body, keys, region)
        response = _http.post(client, self.name, target, content=body, headers=headers)
        return verdicts(response, sender, messages, bulk=bulk)

    def _costs(self, messages: Sequence[OutgoingMessage]) -> list[int | None]:
        # A destination's data is capped by SES; a message over it goes alone, through SendEmail.
        costs: list[int | None] = []
        for message in messages:
            size = len(template_data(message))
            costs.append(None if size > MAX_TEMPLATE_DATA else envelope_size(message) + size)
        return costs


PROVIDER = Ses()
