-- The seller who registered each product (the token's sub); '' for products from before sellers
-- were recorded, which then belong to no seller.
ALTER TABLE products ADD COLUMN seller_id TEXT NOT NULL DEFAULT '';
