-- Fails the statement that calls it. A batch of locks is one statement committed on its own;
-- a lock whose caller's deadline passed while the statement waited for the product's row
-- calls this, so the whole statement takes nothing rather than commit a lock its caller gave
-- up on (product-svc then runs the batch's locks one by one, and the late one is refused).
CREATE FUNCTION lock_too_late() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a product lock outlived its caller''s deadline';
END
$$;
