-- When step 2 last saved the campaign: an import is due when it is newer than imported_at.
ALTER TABLE campaigns ADD COLUMN configured_at timestamptz;
