ALTER TABLE reservations DROP COLUMN seller_id;
