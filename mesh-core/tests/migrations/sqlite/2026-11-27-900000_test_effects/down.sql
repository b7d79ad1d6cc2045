DROP TABLE test_effects;
