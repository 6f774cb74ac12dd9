-- Stored Responses (issue 11): `store: true` keeps a Response and its conversation for
-- RESPONSES_TTL_HOURS so `previous_response_id` and GET/DELETE /v1/responses/{id} work.
-- `owner` is the SHA-256 of the credential that created it (never the credential itself).
-- See src/response_store.rs.
CREATE TABLE IF NOT EXISTS responses (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  model TEXT,
  messages TEXT NOT NULL,
  response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_responses_expires ON responses (expires_ms);
