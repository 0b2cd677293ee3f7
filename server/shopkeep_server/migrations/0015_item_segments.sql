-- Items only a segment sees (issue 15): a version's segment-only items, one row per item with
-- its segment's rule compiled (store/segments.py) and inlined, as catalog_offers holds an
-- offer's. An item without a row here is for everyone. Whether a player sees one is decided
-- by sk_hidden_items (sql/66_offers.sql), for the catalog view and the purchase alike.
CREATE TABLE catalog_item_segments (
    version_id bigint NOT NULL REFERENCES catalog_versions (id),
    sku        text NOT NULL,
    segment_id text NOT NULL,
    rule       jsonb NOT NULL,
    PRIMARY KEY (version_id, sku)
);

CREATE TRIGGER catalog_item_segments_append_only BEFORE UPDATE OR DELETE ON catalog_item_segments
    FOR EACH ROW EXECUTE FUNCTION sk_refuse_change();
CREATE TRIGGER catalog_item_segments_no_truncate BEFORE TRUNCATE ON catalog_item_segments
    FOR EACH STATEMENT EXECUTE FUNCTION sk_refuse_change();
