-- First byte vs first token (issue 12): `first_byte_ms` is when the client got its first
-- bytes (a fake stream's first heartbeat), `first_token_ms` when the first content did.
ALTER TABLE requests ADD COLUMN first_token_ms INTEGER;
