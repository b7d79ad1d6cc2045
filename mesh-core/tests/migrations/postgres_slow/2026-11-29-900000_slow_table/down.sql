DROP TABLE slow_table;
