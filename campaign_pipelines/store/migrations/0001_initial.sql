-- Sending servers: one API account at a provider (the seed's "Serveurs SMTP").
-- api_key_ref holds where the key lives ("env:NAME" or "file:/path"), never the key.
CREATE TABLE servers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    provider    text NOT NULL,
    url         text NOT NULL,
    api_key_ref text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE templates (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    html       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL,
    subject              text NOT NULL,
    template_id          bigint NOT NULL REFERENCES templates (id),
    -- The template as it was when the campaign was configured: later edits of the
    -- template never change a campaign already planned.
    template_html        text NOT NULL,
    status               text NOT NULL DEFAULT 'draft' CHECK (status IN (
                             'draft', 'processing', 'scheduled', 'running',
                             'paused', 'completed', 'failed', 'cancelled')),
    contact_files        text[] NOT NULL DEFAULT '{}',
    nbre_contacts        bigint NOT NULL DEFAULT 0,
    blacklisted_contacts bigint NOT NULL DEFAULT 0,
    sent_count           bigint NOT NULL DEFAULT 0,
    error                text,
    imported_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- The import sensor looks for configured campaigns whose import has not run yet.
CREATE INDEX campaigns_status_idx ON campaigns (status);

-- A sending line of a campaign: sender + server + the seed's diffusion rules.
CREATE TABLE campaign_channels (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id            bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    position               integer NOT NULL,
    sender_name            text NOT NULL,
    sender_email           text NOT NULL,
    server_id              bigint NOT NULL REFERENCES servers (id),
    send_frequency_minutes numeric CHECK (send_frequency_minutes >= 0),
    max_daily_sends        integer CHECK (max_daily_sends > 0),
    scheduled_at           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    -- Lines are read per campaign, in order; this unique index serves that query.
    UNIQUE (campaign_id, position)
);
-- Deactivating a server lists the campaigns that still use it.
CREATE INDEX campaign_channels_server_idx ON campaign_channels (server_id);

-- One row per (campaign, contact) send attempt: the reservation the seed describes.
CREATE TABLE email_log (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id         bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id          bigint NOT NULL,
    channel_id          bigint REFERENCES campaign_channels (id) ON DELETE SET NULL,
    status              text NOT NULL,
    provider_message_id text,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- A contact is reserved once per campaign: the database refuses a second reservation.
    UNIQUE (campaign_id, contact_id)
);

-- Global blacklist (unsubscribes, complaints, hard bounces): checked at import and at send time.
CREATE TABLE blacklist (
    email      text PRIMARY KEY,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
