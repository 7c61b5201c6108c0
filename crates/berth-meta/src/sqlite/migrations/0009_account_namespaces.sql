-- Berth metadata schema, version 9: every account owns its own registry namespace.
--
-- A repository is stored under its qualified name, `<account>/<name>` (the account is 12
-- digits, so the name starts at the 14th character). The UNIQUE index on
-- repositories.name now keeps names unique per account, and one registry's repositories
-- are one contiguous range of it: `name > '<account>/' AND name < '<account>0'`.
-- Rows that name a repository by text (uploads, the event outbox, the expiry log) carry
-- the qualified name too.
--
-- Until now one server held one namespace, the configured account's, which bootstrap
-- created first; an older data dir without accounts belonged to the default account id.
CREATE TEMP TABLE migration_0009_owner AS
    SELECT COALESCE((SELECT id FROM accounts ORDER BY created_ms, id LIMIT 1), '000000000000') AS id;

UPDATE repositories SET name = (SELECT id FROM migration_0009_owner) || '/' || name;
UPDATE uploads SET repository = (SELECT id FROM migration_0009_owner) || '/' || repository;
UPDATE events SET repository = (SELECT id FROM migration_0009_owner) || '/' || repository;
UPDATE lifecycle_events SET repository = (SELECT id FROM migration_0009_owner) || '/' || repository;

DROP TABLE migration_0009_owner;
