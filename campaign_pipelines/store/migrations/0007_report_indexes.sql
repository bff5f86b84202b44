-- Reports read a campaign's events per contact, in contact order, from the index alone (issue 11).
-- With kind, flag, link and time in the index, PostgreSQL folds the events of each contact as it
-- walks the index (an index-only scan feeding a streamed aggregate) and merge-joins them to the
-- contact table's primary key: no sort, no hash table, the same memory for 1M contacts or 1B.
CREATE INDEX tracking_events_report_idx ON tracking_events (campaign_id, contact_id)
    INCLUDE (kind, flag, link_idx, occurred_at);
DROP INDEX tracking_events_campaign_contact_idx;

-- Provider events had no index by campaign: each report read every campaign's.
CREATE INDEX delivery_events_report_idx ON delivery_events (campaign_id, contact_id) INCLUDE (event)
    WHERE contact_id IS NOT NULL;
