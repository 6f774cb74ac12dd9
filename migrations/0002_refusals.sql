-- Requests refused for a missing or wrong access token: only a count per minute, so a flood
-- of them cannot evict real rows from `requests` (see src/log.rs, refusal_statements).
CREATE TABLE IF NOT EXISTS refusals (
  minute_ms INTEGER PRIMARY KEY,
  count INTEGER NOT NULL DEFAULT 0
);
