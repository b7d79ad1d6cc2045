DROP FUNCTION lock_too_late();
