-- Berth metadata schema, version 9 (PostgreSQL): every account owns its own registry
-- namespace.
--
-- A repository is stored under its qualified name, `<account>/<name>` (the account is 12
-- digits, so the name starts at the 14th character). The UNIQUE index on
-- repositories.name keeps names unique per account, and one registry's repositories are
-- one contiguous range of it (COLLATE "C"): `name > '<account>/' AND name < '<account>0'`.
-- Rows that name a repository by text (uploads, the event outbox, the expiry log) carry
-- the qualified name too.
--
-- As in SQLite's version 9, rows written before it move to the first account. (A
-- PostgreSQL database starts empty at the latest version, so these find nothing; they are
-- kept so the two histories say the same.)
UPDATE repositories SET name = COALESCE((SELECT id FROM accounts ORDER BY created_ms, id LIMIT 1), '000000000000') || '/' || name;
UPDATE uploads SET repository = COALESCE((SELECT id FROM accounts ORDER BY created_ms, id LIMIT 1), '000000000000') || '/' || repository;
UPDATE events SET repository = COALESCE((SELECT id FROM accounts ORDER BY created_ms, id LIMIT 1), '000000000000') || '/' || repository;
UPDATE lifecycle_events SET repository = COALESCE((SELECT id FROM accounts ORDER BY created_ms, id LIMIT 1), '000000000000') || '/' || repository;
