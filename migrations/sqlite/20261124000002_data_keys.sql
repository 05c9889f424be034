-- Per-scope (transcript or upload) data keys, wrapped by the master key. Deleting a row
-- crypto-shreds every content file of its scope; secure_delete zeroes the freed page.
CREATE TABLE data_keys (
    scope       TEXT PRIMARY KEY NOT NULL,
    wrapped     BLOB NOT NULL
) STRICT;
