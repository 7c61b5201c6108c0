-- Berth metadata schema, version 3 (PostgreSQL): repository settings for the ECR API.
-- Repositories created implicitly by a /v2 push keep the defaults (MUTABLE, not created by the API).

ALTER TABLE repositories ADD COLUMN image_tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE';
ALTER TABLE repositories ADD COLUMN created_by_api BOOLEAN NOT NULL DEFAULT false;
