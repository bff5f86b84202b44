-- Tracking and deliverability (issue: tracking, unsubscribe, webhooks).

-- The links of a campaign's template: a click can only redirect to one of these.
CREATE TABLE campaign_links (
    campaign_id bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idx         integer NOT NULL,
    url         text NOT NULL,
    PRIMARY KEY (campaign_id, idx)
);

-- Opens, clicks and unsubscribes as the tracking app recorded them, written in batches.
-- kind: 1 open, 2 click, 3 unsubscribe. flag: 0 human, 1 Apple MPP proxy, 2 security scanner,
-- 3 prefetch (HEAD, or within seconds of sending). Flagged, never dropped.
CREATE TABLE tracking_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id bigint NOT NULL,
    contact_id  bigint NOT NULL,
    kind        smallint NOT NULL,
    link_idx    integer,
    flag        smallint NOT NULL DEFAULT 0,
    occurred_at timestamptz NOT NULL,
    ip          inet,
    user_agent  text
);
-- Every report groups a campaign's events by contact (unique opens and clicks, per line).
CREATE INDEX tracking_events_campaign_contact_idx ON tracking_events (campaign_id, contact_id);

-- Where a blacklist entry came from: unsubscribe, complaint, hard_bounce, soft_bounce, manual.
ALTER TABLE blacklist ADD COLUMN source text NOT NULL DEFAULT 'manual';

-- Provider webhook events (delivered, bounces, complaints), matched to our send ids.
CREATE TABLE delivery_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text NOT NULL,
    campaign_id bigint,
    contact_id  bigint,
    email       text NOT NULL,
    event       text NOT NULL,
    detail      text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
-- Soft bounces are counted per address to blacklist after N of them.
CREATE INDEX delivery_events_soft_bounce_idx ON delivery_events (email) WHERE event = 'soft_bounce';

-- Mailgun webhook tokens already seen: a replayed signature is refused.
CREATE TABLE webhook_tokens (
    token   text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
