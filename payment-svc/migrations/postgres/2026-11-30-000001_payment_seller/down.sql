ALTER TABLE payments DROP COLUMN seller_id;
