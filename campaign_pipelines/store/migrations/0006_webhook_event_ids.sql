-- Provider event ids (issue 10): an event a provider retries, or anyone replays, is stored once,
-- and soft bounces count distinct events.

-- The provider's own id of the event (SendGrid's sg_event_id), or one derived from the event's
-- identifying fields (tracking_app.webhooks_payloads). Rows stored before this migration have none.
ALTER TABLE delivery_events ADD COLUMN event_id text;

-- Those older rows were stored once per copy received. Copies of one event agree on everything
-- but their id and arrival time: all but the first are the replays this migration stops, and
-- would otherwise keep counting towards an address's soft bounces.
DELETE FROM delivery_events
WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY provider, email, event, occurred_at, detail, campaign_id, contact_id ORDER BY id
        ) AS copy
        FROM delivery_events
    ) AS numbered
    WHERE copy > 1
);

-- The guarantee itself: INSERT … ON CONFLICT DO NOTHING against it, so two identical requests
-- at once store one row (the second waits for the first to commit, then skips it).
CREATE UNIQUE INDEX delivery_events_event_id_key ON delivery_events (provider, event_id);

-- Every row from now on has an id; NOT VALID leaves the older rows as they are (their NULLs
-- never conflict in the unique index).
ALTER TABLE delivery_events ADD CONSTRAINT delivery_events_event_id_present CHECK (event_id IS NOT NULL) NOT VALID;
