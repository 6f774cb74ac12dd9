-- Access keys (src/keys.rs): the key itself is never stored, only its SHA-256 hash.
CREATE TABLE IF NOT EXISTS access_keys (
  id TEXT PRIMARY KEY,
  key_hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  hint TEXT NOT NULL,
  models TEXT NOT NULL DEFAULT '[]',
  origins TEXT NOT NULL DEFAULT '[]',
  rpm INTEGER,
  tpm INTEGER,
  tpd INTEGER,
  expires_at INTEGER,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- Which access key made each logged call (NULL for the master token and public mode).
ALTER TABLE requests ADD COLUMN key_id TEXT;
ALTER TABLE requests ADD COLUMN key_name TEXT;
CREATE INDEX IF NOT EXISTS requests_key_id ON requests (key_id, created_ms);
