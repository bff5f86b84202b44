-- Sending state (issue: the sending swarm).

-- A provider's quota is per account: an optional daily cap shared by every campaign on the
-- server, counted in the server's time zone (also the zone of its lines' max_daily_sends).
ALTER TABLE servers
    ADD COLUMN daily_cap integer CHECK (daily_cap > 0),
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC',
    -- Messages per API call; NULL = the provider's maximum, 1 = one-message calls.
    ADD COLUMN batch_size integer CHECK (batch_size > 0);

-- Each line's own state, so a line can stop (quota, start date, pause, error) and be resumed
-- by a later run exactly where it was.
ALTER TABLE campaign_channels
    ADD COLUMN status text NOT NULL DEFAULT 'pending' CHECK (status IN (
        'pending', 'sending', 'waiting', 'quota_reached', 'paused', 'error', 'done', 'cancelled')),
    ADD COLUMN reason text,
    ADD COLUMN sent_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN unknown_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN suppressed_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_sent_at timestamptz,
    -- When a waiting or quota-stopped line may send again.
    ADD COLUMN next_run_at timestamptz,
    -- Written by the running line at least every few seconds; a stale one means a dead worker.
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN run_id text,
    -- Bumped at every relaunch: part of the sensors' run keys.
    ADD COLUMN attempt integer NOT NULL DEFAULT 0;

-- The relaunch sensors look for lines to wake or to rescue by status.
CREATE INDEX campaign_channels_status_idx ON campaign_channels (status);

ALTER TABLE campaigns
    ADD COLUMN started_at timestamptz,
    ADD COLUMN finished_at timestamptz;

-- Daily counters when Redis is not configured (the embedded default): same atomic
-- reserve/give-back semantics as the Redis counters.
CREATE TABLE daily_counters (
    counter  text NOT NULL,
    day      date NOT NULL,
    used     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (counter, day)
);

-- Send state lives with each contact in its campaign's table (one row per campaign and
-- contact, as the seed's EmailLog): the global log was never written.
DROP TABLE email_log;
