DROP TABLE reservation_fences;
