-- A migration that takes a moment, as a real one on a big table does: replicas starting
-- together overlap inside it unless they take turns.
CREATE TABLE slow_table (id BIGINT PRIMARY KEY);
SELECT pg_sleep(0.3);
