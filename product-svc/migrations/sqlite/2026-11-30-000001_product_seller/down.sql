ALTER TABLE products DROP COLUMN seller_id;
