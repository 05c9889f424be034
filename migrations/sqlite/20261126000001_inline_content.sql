-- Small content objects (sealed under the encrypted store, as files are), kept in the
-- database instead of one file each: one statement of the writer's group commit to store,
-- one query for a page of them to read. Deleting a row is deleting the object.
CREATE TABLE contents (
    key TEXT PRIMARY KEY NOT NULL,
    bytes BLOB NOT NULL,
    modified_at INTEGER NOT NULL
);
